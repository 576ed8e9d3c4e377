"""Check a built book as tests/book/test_build.py checks the tiny one: no plumbing, every figure
drawn offline, nothing external.  python tests/book/check_book_html.py _build/html"""
import sys, tempfile
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
import test_build as t

html = Path(sys.argv[1])
pages = [html / "book" / "intro.html"] + sorted((html / "book" / "executed").glob("*.html"))
bad = 0
for p in pages:
    text = p.read_text()
    found = {w: m.group(0) for w, pat in t.PLUMBING.items() if (m := pat.search(text))}
    static = t.Page(text)
    with tempfile.TemporaryDirectory() as prof:
        dom = t.Page(t.dump_dom(p, Path(prof)))
    ok = (not found and not dom.external() and dom.plotly_drawn == static.plotly_divs
          and dom.main_svgs >= static.plotly_divs and (not static.math or dom.mathjax)
          and (not static.widget_views or dom.widgets))
    bad += not ok
    print(f"{'ok ' if ok else 'BAD'} {p.stem:40s} figures {dom.plotly_drawn}/{static.plotly_divs} "
          f"svgs {dom.main_svgs} widgets {dom.widgets}/{static.widget_views} "
          f"shaded tokens {len(dom.tok_alphas)} plumbing {found or 'none'} external {dom.external() or 'none'}")
sys.exit(bad)
