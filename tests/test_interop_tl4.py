"""The interop tests again, against TransformerLens 4.x.

The main venv holds TL 3.9.0 (the ``interop`` extra). ``make setup`` also installs TL 4.3.0,
without its dependencies (the main set satisfies them), into ``<venv>/tl4``
(``$SOLU_TL4_SITE`` overrides), so both lines share the venv's torch. This test runs the TL
test modules in a child ``pytest`` with that folder first on ``PYTHONPATH``, where it shadows
TL 3.9, and checks that the child passed and really imported TL 4: the child writes the
version it imported, and ``test_installed_line_is_the_expected_one`` fails there if it is not
the 4.x line.
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TL4_SITE = Path(os.environ.get("SOLU_TL4_SITE") or Path(sys.prefix) / "tl4")
# test_pretrained.py builds TL 3's HookedTransformer; under TL 4 it must skip, not error.
TL_TEST_FILES = ("tests/test_interop.py", "tests/test_pretrained.py")


def junit_outcomes(path: Path) -> dict[str, str]:
    """``{"module::test[id]": "passed" | "skipped" | "failed"}`` from a JUnit XML report."""
    outcomes = {}
    for case in ET.parse(path).iter("testcase"):
        name = f"{case.get('classname', '').rsplit('.', 1)[-1]}::{case.get('name')}"
        kinds = {child.tag for child in case}
        outcomes[name] = ("failed" if kinds & {"failure", "error"} else
                          "skipped" if "skipped" in kinds else "passed")
    return outcomes


@pytest.mark.slow
def test_interop_passes_under_transformer_lens_4(tmp_path):
    if not (TL4_SITE / "transformer_lens").is_dir():
        pytest.fail(f"TransformerLens 4 is not installed in {TL4_SITE}: run `make setup` "
                    "(or set SOLU_TL4_SITE to a folder holding it)")
    version_file, report = tmp_path / "tl_version", tmp_path / "junit.xml"
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join(
               p for p in (str(TL4_SITE), os.environ.get("PYTHONPATH")) if p),
           "SOLU_EXPECT_TL_MAJOR": "4",
           "SOLU_TL_VERSION_FILE": str(version_file)}
    # -m "not slow": the only slow test there needs no TL and already ran in this session.
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", *TL_TEST_FILES, "-q", "-p", "no:cacheprovider",
         "-m", "not slow", f"--junitxml={report}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    tail = (proc.stdout + proc.stderr)[-6000:]
    assert proc.returncode == 0, f"the TL 4 run failed (exit {proc.returncode}):\n{tail}"
    assert version_file.read_text().startswith("4."), (
        f"the child imported TransformerLens {version_file.read_text()}, not 4.x, although "
        f"{TL4_SITE} was first on PYTHONPATH")
    outcomes = junit_outcomes(report)
    # The line check ran (not skipped), and the TL 4 conversions themselves ran.
    assert outcomes.get("test_interop::test_installed_line_is_the_expected_one") == "passed"
    tl4_ran = [n for n, o in outcomes.items()
               if o == "passed" and ("test_native_bridge_converts" in n
                                     or "test_logits_and_hooks_match_transformer_lens" in n)]
    assert len(tl4_ran) >= 6, f"too few TL 4 conversions passed: {tl4_ran}\n{tail}"
    assert not [n for n, o in outcomes.items() if o == "failed"], tail
