"""Neuron viewer: snippets recomputed from a harvest, Figure 3 HTML and its escaping, terminal
text, direct logit effects (paper §6.3.1) against the model's own forward pass, the browser."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from solu_repro.data import decode_tokens, get_rows
from solu_repro.interp.harvest import Example, Harvest, HarvestError, harvest, split_position
from solu_repro.interp.view import (NeuronBrowser, Snippet, band_options, direct_logit_effect,
                                    logit_effect_html, neuron_html, neuron_snippets,
                                    snippets_html, snippets_text, top_logit_tokens)
from solu_repro.model import ConfigError, ModelConfig, Transformer

N_CTX = 32
HOSTILE = ["<script>", "alert(1)", "</script>", " & ", '"q"', "'s", "\n", "\t", "\x1b[31m",
           "\u202e"]


def _model(corpus, act_fn: str, n_layers: int, seed: int = 0) -> Transformer:
    cfg = ModelConfig(n_layers=n_layers, d_model=32, n_heads=2, d_head=16, d_mlp=64,
                      d_vocab=corpus.vocab_size, n_ctx=N_CTX, act_fn=act_fn, seed=seed)
    model = Transformer(cfg).eval()
    with torch.no_grad():
        # Untrained models have ln_final.w = 1, b = 0 and near-centred W_out rows, which would
        # let a logit effect that forgot the LN's scale or its centring pass; break all three.
        gen = torch.Generator().manual_seed(seed + 1)
        model.ln_final.w.copy_(torch.rand(cfg.d_model, generator=gen) * 1.5 + 0.25)
        model.ln_final.b.copy_(torch.randn(cfg.d_model, generator=gen) * 0.1)
        for block in model.blocks:
            block.mlp.W_out.add_(0.05)
    return model


@pytest.fixture(scope="module")
def solu1(corpus):
    """A 1-layer SoLU+LN model (both hooks harvested) and its harvest."""
    model = _model(corpus, "solu_ln", 1)
    h = harvest(model, corpus.split("val"), N_CTX, corpus.bos_id, progress=False,
                meta={"name": "solu-1l"})
    return model, h


@pytest.fixture(scope="module")
def gelu2(corpus):
    """A 2-layer GELU model (no extra LN: hook_post is hook_mid)."""
    model = _model(corpus, "gelu", 2)
    h = harvest(model, corpus.split("val"), N_CTX, corpus.bos_id, progress=False,
                meta={"name": "gelu-2l"})
    return model, h


def _activations(model, corpus, rows, layer, neuron, hook="mid"):
    """The neuron's activations ``(len(rows), n_ctx)`` on whole rows, straight from the model."""
    tokens = get_rows(corpus.split("val"), rows, N_CTX, corpus.bos_id)
    name = f"blocks.{layer}.mlp.hook_{hook}"
    with torch.inference_mode():
        _, cache = model.run_with_cache(tokens, names=[name], return_logits=False)
    return tokens, cache[name][..., neuron].float()


def _focus_titles(page: str) -> list[float]:
    return [float(v) for v in re.findall(r'class="solu-tok solu-focus" style="[^"]*" '
                                         r'title="([^"]*)"', page)]


# --- snippets ---------------------------------------------------------------------------------
@pytest.mark.parametrize("hook", ["mid", "post"])
def test_snippets_recompute_the_harvested_firing(corpus, solu1, hook):
    model, h = solu1
    for neuron in (0, 7, 63):
        examples = h.top_examples(0, neuron, hook, n=6)
        snippets = neuron_snippets(model, corpus, h, 0, neuron, examples, hook=hook)
        assert len(snippets) == len(examples) > 0
        for s, e in zip(snippets, examples):
            assert (s.row, s.col, s.value) == (e.row, e.col, e.value)
            assert s.activations[s.focus] == pytest.approx(e.value, abs=1e-4)
            # The firing is the row's max (top-k keeps one per row), so nothing shown exceeds it.
            assert max(s.activations) <= e.value + 1e-4


def test_windows_skip_bos_and_clip_at_row_ends(corpus, solu1):
    model, h = solu1
    row, neuron = 3, 5
    tokens, acts = _activations(model, corpus, [row], 0, neuron)
    # Hand-made firings at both ends of the row and in the middle, with their true values.
    examples = [Example(row, col, float(acts[0, col])) for col in (1, 2, 16, N_CTX - 1)]
    for left, right in ((4, 3), (0, 0), (100, 100)):
        for e, s in zip(examples, neuron_snippets(model, corpus, h, 0, neuron, examples,
                                                  left=left, right=right)):
            lo, hi = max(1, e.col - left), min(N_CTX - 1, e.col + right)
            assert s.focus == e.col - lo
            assert len(s.tokens) == len(s.activations) == hi - lo + 1
            assert s.tokens == decode_tokens(corpus.tokenizer, tokens[0, lo:hi + 1])
            assert s.activations == pytest.approx(acts[0, lo:hi + 1].tolist(), abs=1e-5)
    # With a window wider than the row, the whole row but BOS is shown: its first token is
    # the split's token at the row's first position, not BOS (BOS = EOT here, so compare ids).
    whole = neuron_snippets(model, corpus, h, 0, neuron, examples[:1], left=100, right=100)[0]
    first = corpus.split("val").window(split_position(row, 1, N_CTX), 1)
    assert whole.tokens[0] == decode_tokens(corpus.tokenizer, first)[0]
    assert len(whole.tokens) == N_CTX - 1


def test_snippet_sources_are_the_firing_positions_sources(corpus, solu1):
    model, h = solu1
    val = corpus.split("val")
    last_row = val.n_tokens // (N_CTX - 1) - 1
    examples = []
    for row in (0, last_row):  # the val split holds one document per source, in order
        _, acts = _activations(model, corpus, [row], 0, 0)
        examples.append(Example(row, 10, float(acts[0, 10])))
    snippets = neuron_snippets(model, corpus, h, 0, 0, examples)
    expected = [val.source_of(split_position(e.row, e.col, N_CTX)) for e in examples]
    assert [s.source for s in snippets] == expected
    assert set(expected) == set(corpus.source_names)
    page = snippets_html(snippets)
    for source in expected:
        assert f">{source}</span>" in page
    assert snippets_text(snippets).splitlines()[1].startswith(f"[{expected[1]}] ")


def test_snippets_refuse_a_harvest_of_another_model(corpus, solu1):
    model, h = solu1
    other = _model(corpus, "solu_ln", 1, seed=7)
    examples = h.top_examples(0, 2, n=3)
    with pytest.raises(HarvestError, match="another model"):
        neuron_snippets(other, corpus, h, 0, 2, examples)
    assert neuron_snippets(model, corpus, h, 0, 2, []) == []
    with pytest.raises(IndexError):
        neuron_snippets(model, corpus, h, 1, 0, examples)
    with pytest.raises(ConfigError, match="hook"):
        neuron_snippets(model, corpus, h, 0, 2, examples, hook="pre")


# --- HTML -------------------------------------------------------------------------------------
def _hostile_snippet() -> Snippet:
    return Snippet(tokens=HOSTILE, activations=[float(i) for i in range(len(HOSTILE))],
                   focus=1, value=1.0, source="<b>src</b>", row=0, col=2)


def test_html_escapes_all_corpus_text():
    page = snippets_html([_hostile_snippet()], title='<img src=x onerror="y">')
    assert "<script" not in page.lower() and "<img" not in page and "<b>" not in page
    assert "&lt;script&gt;" in page and "&lt;/script&gt;" in page
    assert " &amp; " in page and "&quot;q&quot;" in page and "&#x27;s" in page
    assert "&lt;b&gt;src&lt;/b&gt;" in page
    # Newline and tab visible; the escape character and a bidi override cannot act.
    assert "⏎<br>" in page and "⇥\t" in page
    assert "\x1b" not in page and "\\x1b[31m" in page
    assert "\u202e" not in page and "\\u202e" in page
    # Static and offline: no scripts, no external resources.
    for bad in ("<script", "<link", "<iframe", "http:", "https:", "src=\"", "@import"):
        assert bad not in page.replace('src=x', '')


def _opacities(page: str) -> list[float]:
    return [float(a) for a in re.findall(r'class="solu-tok[^"]*" style="background-color:'
                                         r'rgba\(\d+,\d+,\d+,([0-9.]+)\)', page)]


def test_html_shading_is_monotone_in_activation_with_exact_hover_values():
    acts = [-1.0, 0.0, 0.1, 0.25, 0.5, 0.75, 2.0]
    s = Snippet(tokens=[f"t{i}" for i in range(len(acts))], activations=acts, focus=6,
                value=2.0, source="sotu", row=0, col=7)
    alphas = _opacities(snippets_html([s]))
    assert alphas == sorted(alphas) and len(alphas) == len(acts)
    assert alphas[0] == alphas[1] == 0.0 and alphas[-1] == 1.0
    assert alphas[4] == pytest.approx(0.25, abs=1e-3)  # default max: the largest shown
    clipped = _opacities(snippets_html([s], max_value=0.5))
    assert clipped[4:] == [1.0, 1.0, 1.0]
    page = snippets_html([s])
    assert re.findall(r'title="([^"]*)"', page) == [f"{a:.6g}" for a in acts]
    assert page.count("solu-focus") == 1 and "outline" in page
    assert "No examples" in snippets_html([])
    with pytest.raises(ConfigError):
        snippets_html([s], max_value=0.0)


def test_text_rendering_marks_focus_and_strong_tokens():
    s = Snippet(tokens=["a", "b", "\n", "c", "\x1b[2J", "d"],
                activations=[0.0, 0.29, 0.5, 1.0, 0.0, 0.31], focus=3, value=1.0,
                source="sotu", row=0, col=4)
    text = snippets_text([s, s])
    lines = text.split("\n")
    assert len(lines) == 2 and lines[0] == lines[1]
    assert lines[0] == "[sotu] ab‹⏎›[[c]]\\x1b[2J‹d›"
    colored = snippets_text([s], color=True)
    assert "[[" in colored and "\x1b[48;5;" in colored  # ANSI backgrounds, firing marked
    assert "\x1b[2J" not in colored and "\\x1b[2J" in colored  # corpus ESC stays inert
    assert "‹" not in colored
    assert snippets_text([]) == ""


def test_neuron_html_header_bands_and_empty_band(corpus, solu1):
    model, h = solu1
    neuron = 11
    top = neuron_html(model, corpus, h, 0, neuron, n=5)
    assert "solu-1l" in top and ">L0N11<" in top and "hook_mid" in top and "max " in top
    assert len(_focus_titles(top)) == 5
    for band in (9, 5):
        page = neuron_html(model, corpus, h, 0, neuron, band=band, n=4)
        lo, hi = h.band_range(0, neuron, band)
        assert f"band {band} of 10" in page
        for value in _focus_titles(page):
            assert lo - 1e-4 < value <= hi + 1e-4
    page = neuron_html(model, corpus, h, 0, neuron, hook="post", band=(0.9, 0.99), n=4)
    assert "quantiles 0.9-0.99" in page and "hook_post" in page
    assert 0 < len(_focus_titles(page)) <= 4
    # A neuron whose max lies far above every recorded firing has empty upper bands.
    tensors = {hook: dict(fields) for hook, fields in h.tensors.items()}
    for fields in tensors.values():
        fields["max"] = fields["max"].clone()
        fields["max"][0, neuron] = 1e6
    inflated = Harvest(h.meta, tensors)
    assert inflated.band_examples(0, neuron, 5) == []
    empty = neuron_html(model, corpus, inflated, 0, neuron, band=5)
    assert "No recorded firings" in empty and "solu-tok" not in empty
    for bad in ("bottom", True, (0.5,), 1.5):
        with pytest.raises(ConfigError, match="band"):
            neuron_html(model, corpus, h, 0, neuron, band=bad)


# --- direct logit effect (paper §6.3.1) -------------------------------------------------------
class _FrozenScaleLN(nn.Module):
    """The final LN with its denominator fixed to the values of a clean run: what remains is
    linear, so a neuron's push must change the logits by exactly effect / sigma."""

    def __init__(self, ln: nn.Module, sigma: torch.Tensor):
        super().__init__()
        self.ln, self.sigma = ln, sigma

    def forward(self, x):
        return (x - x.mean(-1, keepdim=True)) / self.sigma * self.ln.w + self.ln.b


def _push_neuron(model, neuron: int, amount: float):
    """A forward hook adding ``amount`` to the neuron's hook_post activation (layer 0)."""
    def hook(_module, _inputs, output):
        mid, post = output
        post = post.clone()
        post[..., neuron] += amount
        return mid, post
    return model.blocks[0].mlp.act.register_forward_hook(hook)


def test_direct_logit_effect_matches_the_model_forward_pass(corpus, solu1):
    model, _ = solu1
    neuron = 9
    effect = direct_logit_effect(model, 0, neuron)
    assert effect.shape == (corpus.vocab_size,)
    w_out = model.blocks[0].mlp.W_out[neuron].detach()
    expected = ((w_out - w_out.mean()) * model.ln_final.w.detach()) @ model.W_U.detach()
    assert torch.allclose(effect, expected, atol=1e-6)

    tokens = get_rows(corpus.split("val"), [0, 1], N_CTX, corpus.bos_id)
    real_ln = model.ln_final
    with torch.no_grad():
        base = model(tokens)
        resid = model(tokens, stop_after_blocks=True)
        sigma = (resid.var(-1, unbiased=False, keepdim=True) + model.cfg.ln_eps).sqrt()
        model.ln_final = _FrozenScaleLN(real_ln, sigma)
        try:
            assert torch.allclose(model(tokens), base, atol=1e-5)
            handle = _push_neuron(model, neuron, 1.0)
            try:
                frozen_delta = model(tokens) - base  # (B, T, V)
            finally:
                handle.remove()
        finally:
            model.ln_final = real_ln
        # Exact in the 1-layer model: the push reaches the logits only through W_out.
        assert torch.allclose(frozen_delta * sigma, effect.expand_as(frozen_delta), atol=1e-4)
        # With the real LN its denominator moves too: same direction, not the same vector.
        handle = _push_neuron(model, neuron, 1e-3)
        try:
            delta = (model(tokens) - base).reshape(-1, corpus.vocab_size)
        finally:
            handle.remove()
    corr = torch.stack([torch.corrcoef(torch.stack([d, effect]))[0, 1] for d in delta])
    assert corr.mean() > 0.9 and corr.min() > 0.5


def test_top_logit_tokens_order_and_html_escaping(corpus, solu1):
    model, _ = solu1
    effect = torch.zeros(corpus.vocab_size)
    effect[[5, 6, 7]] = torch.tensor([3.0, 1.0, 2.0])
    effect[[8, 9]] = torch.tensor([-1.0, -4.0])
    up, down = top_logit_tokens(effect, corpus.tokenizer, n=3)
    names = decode_tokens(corpus.tokenizer, [5, 7, 6, 9, 8])
    assert up == [(names[0], 3.0), (names[1], 2.0), (names[2], 1.0)]
    assert down[:2] == [(names[3], -4.0), (names[4], -1.0)]
    up, down = top_logit_tokens(direct_logit_effect(model, 0, 4), corpus.tokenizer, n=10)
    values = [v for _, v in up]
    assert values == sorted(values, reverse=True) and len(up) == 10
    assert [v for _, v in down] == sorted(v for _, v in down)
    page = logit_effect_html(model, corpus.tokenizer, 0, 4, n=10)
    assert "L0N4" in page and "Increases" in page and "Decreases" in page
    assert page.count('class="solu-logit-tok"') == 20
    assert "<script" not in page and "\n" not in page  # newline tokens show as ⏎


# --- the browser ------------------------------------------------------------------------------
def test_neuron_browser_reacts_to_its_controls(corpus, solu1, gelu2):
    pytest.importorskip("ipywidgets")
    browser = NeuronBrowser({"solu-1l": (solu1[0], corpus, solu1[1]),
                             "gelu-2l": (gelu2[0], corpus, gelu2[1])}, seed=0)
    assert ">L0N0<" in browser.html and "solu-logit-effect" in browser.html
    browser.neuron_input.value = 5
    assert ">L0N5<" in browser.html
    browser.band_select.value = 9
    assert "band 9 of 10" in browser.html
    browser.hook_toggle.value = "post"
    assert "hook_post" in browser.html and not browser.hook_toggle.disabled
    browser.band_select.value = (0.5, 0.9)
    assert "quantiles 0.5-0.9" in browser.html

    browser.model_select.value = "gelu-2l"
    assert browser.hook_toggle.disabled and browser.hook_toggle.value == "mid"
    assert "gelu-2l" in browser.html and "solu-logit-effect" not in browser.html
    assert browser.layer_input.max == 1
    browser.layer_input.value = 1
    assert ">L1N5<" in browser.html

    before = browser.html
    browser.random_button.click()
    label = re.search(r">L(\d+)N(\d+)<", browser.html)
    assert browser.html != before and label
    assert (int(label[1]), int(label[2])) == (browser.layer_input.value,
                                              browser.neuron_input.value)

    page = browser.show("solu-1l", 0, 42, band="top", hook="mid")
    assert page == browser.html and ">L0N42<" in page and "top firings" in page
    assert browser.model_select.value == "solu-1l" and not browser.hook_toggle.disabled
    assert [label for label, _ in band_options()][:2] == ["top", "band 9 (90-100% of max)"]
    with pytest.raises(IndexError):
        browser.show("solu-1l", 1, 0)
    with pytest.raises(KeyError):
        browser.show("nope", 0, 0)
