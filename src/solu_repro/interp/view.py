"""Looking at neurons: Figure 3-style dataset examples, direct logit effects, a widget browser.

* ``neuron_snippets`` turns harvested firings (``Example``) back into text: it re-runs the
  model on the firings' rows and cuts a window of tokens around each firing, with the
  neuron's activation at every token.
* ``snippets_html`` draws them as the paper's evaluators saw them (§6.1, Figure 3): tokens
  shaded red by activation, the exact value on hover. ``snippets_text`` is the terminal
  version for the command-line blinded tool.
* ``neuron_html`` puts one neuron's header, statistics and examples (top firings, a band of
  activation levels, or a quantile range; §6.4) on one page.
* ``direct_logit_effect`` / ``logit_effect_html``: which next tokens a neuron promotes and
  suppresses through the direct path, as in §6.3.1 and Figure 5.
* ``NeuronBrowser``: an ipywidgets app over several models (ipywidgets is imported lazily,
  so everything else works without it).

All HTML is static: inline CSS, no scripts, no external resources, so it renders offline,
in JupyterLab and in a Jupyter Book page. Corpus text is untrusted and the book is
published, so every piece of it is escaped, and control characters are made visible.
"""

from __future__ import annotations

import html
import math
import unicodedata
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from ..data import DataError, TokenizedCorpus, decode_tokens, get_rows
from ..hooks import act_name
from ..model import ConfigError, Transformer
from .harvest import HOOKS, Example, Harvest, HarvestError

Band = str | int | tuple[float, float]

# Rows per forward pass when recomputing activations (the harvest's default batch size).
_BATCH_ROWS = 16
# A recomputed firing must match the harvested value this closely (absolute + relative);
# a larger gap means the harvest was made with another model or corpus. Loose enough for
# reduced precision and batch-composition noise, far tighter than any real mismatch.
_MATCH_ATOL, _MATCH_RTOL = 1e-3, 5e-2
# snippets_text marks tokens at or above this fraction of the maximum with ‹ ›.
TEXT_MARK_FRACTION = 0.3
# Quantile ranges offered by the browser (paper §6.4: look beyond the top examples).
QUANTILE_BANDS = ((0.99, 1.0), (0.9, 0.99), (0.5, 0.9))

_SHADE_RGB = "230,40,40"  # the red of Figure 3
_CONTROL_NAMES = {"\r": "\\r", "\x00": "\\0", "\x0b": "\\v", "\x0c": "\\f"}
_BOX_STYLE = ("font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;"
              "font-size:12px;line-height:1.7;color:#111;background:#fff;")


@dataclass(frozen=True)
class Snippet:
    """A window of text around one firing, with the neuron's activation at every token.

    Attributes:
        tokens: Decoded token strings of the window shown, length ``W``.
        activations: The neuron's activation at each token (same hook as the harvest),
            length ``W``.
        focus: Index into ``tokens`` of the harvested firing.
        value: The harvested activation at the firing.
        source: Corpus source name of the firing's position, e.g. ``"sotu"``.
        row: Row of the split the window comes from.
        col: Column of the firing in that row (``>= 1``; column 0 is BOS).
    """

    tokens: list[str]
    activations: list[float]
    focus: int
    value: float
    source: str
    row: int
    col: int


# --- recomputing activations -----------------------------------------------------------------
def _check_hook(hook: str) -> None:
    if hook not in HOOKS:
        raise ConfigError(f"hook must be one of {HOOKS} ('mid' is what gets interpreted, "
                          f"'post' is after SoLU's extra LayerNorm), got {hook!r}")


def _check_pairing(model: Transformer, corpus: TokenizedCorpus, harvest: Harvest) -> None:
    """Fail early, with a clear message, when a model, corpus and harvest do not belong together."""
    cfg = model.cfg
    if (cfg.n_layers, cfg.d_mlp) != (harvest.n_layers, harvest.d_mlp):
        raise HarvestError(f"the harvest has {harvest.n_layers} layer(s) of {harvest.d_mlp} "
                           f"neurons but the model has {cfg.n_layers} of {cfg.d_mlp}: they do "
                           "not belong together")
    if cfg.n_ctx < harvest.n_ctx:
        raise HarvestError(f"the harvest's rows have {harvest.n_ctx} tokens, more than the "
                           f"model's context {cfg.n_ctx}")
    if int(harvest.meta.get("bos_id", corpus.bos_id)) != corpus.bos_id:
        raise HarvestError(f"the harvest's rows start with token {harvest.meta['bos_id']}, the "
                           f"corpus's BOS is {corpus.bos_id}: it was made on another corpus")


def neuron_snippets(model: Transformer, corpus: TokenizedCorpus, harvest: Harvest, layer: int,
                    neuron: int, examples: Sequence[Example], hook: str = "mid", left: int = 32,
                    right: int = 8) -> list[Snippet]:
    """Recompute a neuron's activations around harvested firings and cut text windows.

    The firings' rows are rebuilt exactly as the harvest built them (``[BOS] + chunk``) and
    run through the model in batches under ``torch.inference_mode``.

    Args:
        model: The harvested model.
        corpus: Its corpus; rows come from the harvest's split (``meta["split"]``, default
            ``"val"``).
        harvest: The harvest the examples come from (gives ``n_ctx``).
        layer: Layer of the neuron.
        neuron: Index of the neuron in the layer's ``d_mlp``.
        examples: Firings, e.g. from ``harvest.top_examples``.
        hook: ``"mid"`` (interpreted; paper §4.3) or ``"post"`` (after the extra LN).
        left: Tokens shown before the firing.
        right: Tokens shown after it.

    Returns:
        One ``Snippet`` per example, in order. Each window is columns
        ``[col - left, col + right]`` clipped to ``[1, n_ctx - 1]``: BOS is never shown.

    Raises:
        HarvestError: The model, corpus and harvest do not belong together (including a
            recomputed firing that differs from the harvested value).
    """
    _check_hook(hook)
    harvest.check_neuron(layer, neuron)
    for name, value in (("left", left), ("right", right)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"{name} must be an integer >= 0, got {value!r}")
    if not examples:
        return []
    _check_pairing(model, corpus, harvest)
    n_ctx = harvest.n_ctx
    split = corpus.split(harvest.meta.get("split", "val"))
    rows = np.unique(np.array([e.row for e in examples], dtype=np.int64))
    tokens = get_rows(split, rows, n_ctx, corpus.bos_id)  # (R, n_ctx)
    device = next(model.parameters()).device
    name = act_name(hook, layer)
    acts = []
    with torch.inference_mode():
        for start in range(0, len(rows), _BATCH_ROWS):
            batch = tokens[start:start + _BATCH_ROWS].to(device)
            _, cache = model.run_with_cache(batch, names=[name], return_logits=False)
            acts.append(cache[name][..., neuron].float().cpu())  # (b, n_ctx)
    acts_np = torch.cat(acts).numpy()  # (R, n_ctx)
    row_index = {int(r): i for i, r in enumerate(rows)}

    snippets = []
    for e in examples:
        if not 1 <= e.col < n_ctx:
            raise HarvestError(f"example column {e.col} is outside [1, {n_ctx}): not a firing "
                               "of this harvest")
        i = row_index[e.row]
        recomputed = float(acts_np[i, e.col])
        if abs(recomputed - e.value) > _MATCH_ATOL + _MATCH_RTOL * abs(e.value):
            raise HarvestError(
                f"L{layer}N{neuron} at row {e.row}, column {e.col}: the harvest recorded "
                f"{e.value:.6g} but the model gives {recomputed:.6g}; the harvest was made "
                "with another model, corpus or hook")
        lo, hi = max(1, e.col - left), min(n_ctx - 1, e.col + right)
        snippets.append(Snippet(
            tokens=decode_tokens(corpus.tokenizer, tokens[i, lo:hi + 1]),
            activations=[float(a) for a in acts_np[i, lo:hi + 1]],
            focus=e.col - lo, value=float(e.value),
            source=split.source_of(e.position(n_ctx)), row=int(e.row), col=int(e.col)))
    return snippets


# --- making untrusted text safe and visible ---------------------------------------------------
def _escape_control(ch: str) -> str | None:
    """A visible stand-in for an invisible or layout-breaking character, or None if it is fine.

    Control characters (an ANSI escape would restyle a terminal), format characters (bidi
    overrides can make text read differently from what it is) and line/paragraph separators.
    """
    if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
        if ch in _CONTROL_NAMES:
            return _CONTROL_NAMES[ch]
        return f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}"
    return None


def _token_html(text: str, line_breaks: bool = True) -> str:
    """Escape one piece of corpus text for HTML; newlines as ⏎ (plus a break), tabs as ⇥."""
    out = []
    for ch in text:
        if ch == "\n":
            out.append("⏎<br>" if line_breaks else "⏎")
        elif ch == "\t":
            # The tab itself is kept: white-space:pre-wrap shows its width.
            out.append("⇥\t" if line_breaks else "⇥")
        else:
            stand_in = _escape_control(ch)
            out.append(html.escape(stand_in if stand_in is not None else ch, quote=True))
    return "".join(out)


def _token_text(text: str) -> str:
    """One piece of corpus text for a terminal line: newline ⏎, tab ⇥, controls escaped."""
    out = []
    for ch in text:
        if ch == "\n":
            out.append("⏎")
        elif ch == "\t":
            out.append("⇥")
        else:
            stand_in = _escape_control(ch)
            out.append(stand_in if stand_in is not None else ch)
    return "".join(out)


def _max_value(snippets: Sequence[Snippet], max_value: float | None) -> float:
    if max_value is not None:
        if not (isinstance(max_value, (int, float)) and math.isfinite(max_value)
                and max_value > 0):
            raise ConfigError(f"max_value must be a finite number > 0, got {max_value!r}")
        return float(max_value)
    peak = max((max([s.value, *s.activations]) for s in snippets), default=0.0)
    return peak if math.isfinite(peak) and peak > 0 else 1.0  # nothing fires: no shading


def _shade(activation: float, max_value: float) -> float:
    """Opacity in [0, 1]: Figure 3 shades by positive activation relative to the maximum."""
    if not math.isfinite(activation):
        return 0.0
    return min(max(activation, 0.0) / max_value, 1.0)


# --- rendering snippets -------------------------------------------------------------------
def snippets_html(snippets: Sequence[Snippet], max_value: float | None = None,
                  title: str = "") -> str:
    """Figure 3-style static HTML: one block per snippet, tokens shaded by activation.

    Every token is a ``<span class="solu-tok">`` whose red background has opacity
    ``max(activation, 0) / max_value`` and whose ``title`` (shown on hover) is the exact
    activation; the firing token also has class ``solu-focus`` and an outline. Each block
    starts with its source label (``class="solu-source"``).

    Args:
        snippets: From ``neuron_snippets`` (or built by hand).
        max_value: Activation drawn at full opacity; default the largest over the snippets.
            Pass the neuron's harvested max to make shades comparable across bands.
        title: Optional heading (escaped).

    Returns:
        A self-contained HTML fragment: inline CSS, no scripts, all corpus text escaped.
    """
    top = _max_value(snippets, max_value)
    parts = [f'<div class="solu-snippets" style="{_BOX_STYLE}">']
    if title:
        parts.append(f'<div class="solu-title" style="font-weight:bold;margin:4px 0">'
                     f"{html.escape(title)}</div>")
    if not snippets:
        parts.append('<p class="solu-empty" style="color:#555">No examples.</p>')
    for s in snippets:
        parts.append('<div class="solu-snippet" style="border-top:1px solid #ddd;'
                     'padding:4px 2px">')
        parts.append('<span class="solu-source" style="display:inline-block;color:#444;'
                     'background:#eee;border-radius:3px;padding:0 4px;margin-right:6px;'
                     f'font-size:11px">{_token_html(s.source, line_breaks=False)}</span>')
        parts.append('<span class="solu-text" style="white-space:pre-wrap;'
                     'overflow-wrap:anywhere">')
        for i, (token, act) in enumerate(zip(s.tokens, s.activations)):
            focus = i == s.focus
            cls = "solu-tok solu-focus" if focus else "solu-tok"
            style = f"background-color:rgba({_SHADE_RGB},{_shade(act, top):.3f})"
            if focus:
                style += ";outline:2px solid #111;outline-offset:-1px"
            parts.append(f'<span class="{cls}" style="{style}" '
                         f'title="{act:.6g}">{_token_html(token)}</span>')
        parts.append("</span></div>")
    parts.append("</div>")
    return "".join(parts)


def _ansi_background(opacity: float) -> tuple[str, str]:
    """256-colour red backgrounds from pale to full, with black text (widely supported)."""
    reds = (224, 217, 210, 203, 196)
    if opacity <= 0:
        return "", ""
    code = reds[min(int(math.ceil(opacity * len(reds))), len(reds)) - 1]
    return f"\x1b[48;5;{code};38;5;16m", "\x1b[0m"


def snippets_text(snippets: Sequence[Snippet], max_value: float | None = None,
                  color: bool = False) -> str:
    """Terminal rendering: one line per snippet, ``[source] text``.

    The firing token is wrapped in ``[[ ]]``. Other tokens at or above
    ``TEXT_MARK_FRACTION * max_value`` are wrapped in ``‹ ›``, or, with ``color=True``, every
    token gets a red background whose intensity follows its activation (ANSI 256 colours).
    Newlines show as ⏎, tabs as ⇥, and control characters (including ESC) are escaped, so
    corpus text can neither break the one-line layout nor restyle the terminal.

    Args:
        snippets: From ``neuron_snippets``.
        max_value: Reference activation; default the largest over the snippets.
        color: Use ANSI colours instead of ‹ › marks.

    Returns:
        The lines joined with ``"\\n"`` (empty string for no snippets).
    """
    top = _max_value(snippets, max_value)
    lines = []
    for s in snippets:
        parts = []
        for i, (token, act) in enumerate(zip(s.tokens, s.activations)):
            text = _token_text(token)
            if color:
                start, end = _ansi_background(_shade(act, top))
                text = f"{start}{text}{end}"
            elif i != s.focus and act >= TEXT_MARK_FRACTION * top:
                text = f"‹{text}›"
            parts.append(f"[[{text}]]" if i == s.focus else text)
        lines.append(f"[{_token_text(s.source)}] " + "".join(parts))
    return "\n".join(lines)


# --- one neuron's page ------------------------------------------------------------------------
def _select_examples(harvest: Harvest, layer: int, neuron: int, hook: str, band: Band, n: int,
                     n_bands: int, seed: int) -> tuple[list[Example], str]:
    """The examples a band asks for, and a human-readable description of the band."""
    if band == "top":
        examples = harvest.top_examples(layer, neuron, hook, n)
        return examples, "top firings (one per context)"
    if isinstance(band, (int, np.integer)) and not isinstance(band, bool):
        lo, hi = harvest.band_range(layer, neuron, int(band), n_bands, hook)
        examples = harvest.band_examples(layer, neuron, int(band), n_bands, hook, n, seed)
        share = 100 / n_bands
        return examples, (f"band {band} of {n_bands} ({band * share:.0f}-{(band + 1) * share:.0f}% "
                          f"of max): activation in ({lo:.3g}, {hi:.3g}]")
    if (isinstance(band, (tuple, list)) and len(band) == 2
            and all(isinstance(q, (int, float)) and not isinstance(q, bool) for q in band)):
        q_lo, q_hi = float(band[0]), float(band[1])
        low, high = harvest.quantile_range(layer, neuron, q_lo, q_hi, hook)
        examples = harvest.quantile_examples(layer, neuron, q_lo, q_hi, hook, n, seed)
        return examples, (f"quantiles {q_lo:g}-{q_hi:g} of all tokens: activation in "
                          f"({low:.3g}, {high:.3g}]")
    raise ConfigError(f"band must be 'top', a band index in [0, n_bands) or a (lo, hi) pair of "
                      f"quantiles in [0, 1], got {band!r}")


def neuron_html(model: Transformer, corpus: TokenizedCorpus, harvest: Harvest, layer: int,
                neuron: int, hook: str = "mid", band: Band = "top", n: int = 20,
                n_bands: int = 10, seed: int = 0, left: int = 32, right: int = 8) -> str:
    """One neuron's page: header, summary statistics, Figure 3-style examples.

    Shading is relative to the neuron's maximum over the whole harvest, so a low band looks
    pale, as it should.

    Args:
        model, corpus, harvest: The model, its corpus and its harvest.
        layer: Layer of the neuron.
        neuron: Index of the neuron in the layer.
        hook: ``"mid"`` or ``"post"``.
        band: ``"top"`` (the strongest firings, paper §6.1), an int ``b`` (activations in
            ``(b/n_bands, (b+1)/n_bands]`` of the max, §6.4) or a ``(lo, hi)`` pair of
            quantiles over all tokens.
        n: Examples shown.
        n_bands: Number of equal bands of ``(0, max]`` for an int ``band``.
        seed: Seed of the band/quantile sample.
        left, right: Tokens shown before and after each firing.

    Returns:
        A self-contained HTML fragment; a band without recorded firings says so.
    """
    _check_hook(hook)
    examples, band_label = _select_examples(harvest, layer, neuron, hook, band, n, n_bands, seed)
    snippets = neuron_snippets(model, corpus, harvest, layer, neuron, examples, hook, left, right)
    stats = {name: float(harvest.stat(name, hook)[layer, neuron])
             for name in ("max", "mean", "std", "min", "frac_positive", "kurtosis")}
    hook_label = f"hook_{hook}"
    if harvest.meta.get("post_is_mid"):
        hook_label += " (this model has no extra LN: hook_post = hook_mid)"
    name = harvest.meta.get("name") or "model"
    stat_text = (f"max {stats['max']:.4g} · mean {stats['mean']:.4g} · std {stats['std']:.4g}"
                 f" · min {stats['min']:.4g} · fraction &gt; 0 {stats['frac_positive']:.3f}"
                 f" · excess kurtosis {stats['kurtosis']:.3g} · over {harvest.n_tokens} tokens")
    parts = ['<div class="solu-neuron">',
             '<div class="solu-header" style="font-family:sans-serif;font-size:13px;'
             'color:#111;background:#fff;margin-bottom:4px">',
             f'<b>{html.escape(str(name))}</b> · <b class="solu-neuron-label">'
             f"L{layer}N{neuron}</b> · {html.escape(hook_label)} · {html.escape(band_label)}",
             f'<div class="solu-stats" style="color:#555;font-size:12px">{stat_text}</div>',
             "</div>"]
    if snippets:
        peak = stats["max"]
        parts.append(snippets_html(snippets, max_value=peak if peak > 0 else None))
    else:
        parts.append('<p class="solu-empty" style="font-family:sans-serif;color:#555">'
                     "No recorded firings in this band.</p>")
    parts.append("</div>")
    return "".join(parts)


# --- direct logit effect (paper §6.3.1, Figure 5) ------------------------------------------
def direct_logit_effect(model: Transformer, layer: int, neuron: int) -> Tensor:
    """The change in next-token logits per unit of the neuron's ``hook_post`` activation,
    through the direct path (paper §6.3.1: "the neuron's expanded weights to the logits").

    ``center(W_out[neuron]) * ln_final.w @ W_U``. The final LayerNorm subtracts the mean over
    ``d_model`` (a linear map, hence the centring), divides by a data-dependent standard
    deviation, then scales by ``w``. For a 1-layer model this is the exact effect up to that
    denominator, a positive scalar per token that does not change the ranking of tokens
    (when it is held fixed; a large push also moves the denominator). For deeper models it
    is the direct path only: it ignores what later layers do with the neuron's output.

    For ``*_ln`` models, ``hook_mid`` reaches ``hook_post`` through the extra LayerNorm
    (§4.3), so "per unit of post" is per unit of the normalized activation.

    Args:
        model: The model.
        layer: Layer of the neuron.
        neuron: Index of the neuron in the layer.

    Returns:
        ``(d_vocab,)`` float32 tensor on the CPU.
    """
    cfg = model.cfg
    if not (0 <= layer < cfg.n_layers and 0 <= neuron < cfg.d_mlp):
        raise IndexError(f"neuron L{layer}N{neuron} out of range: the model has "
                         f"{cfg.n_layers} layer(s) of {cfg.d_mlp} neurons")
    with torch.no_grad():
        w_out = model.blocks[layer].mlp.W_out[neuron].float()  # (d_model,)
        w_out = w_out - w_out.mean()
        effect = (w_out * model.ln_final.w.float()) @ model.W_U.float()  # (d_vocab,)
    return effect.detach().cpu()


def top_logit_tokens(effect: Tensor, tokenizer, n: int = 10
                     ) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """The tokens a logit effect raises most and lowers most.

    Args:
        effect: ``(d_vocab,)``, e.g. from ``direct_logit_effect``.
        tokenizer: The corpus tokenizer (token strings come from ``decode_tokens``).
        n: Tokens per list.

    Returns:
        ``(increased, decreased)``: lists of ``(token, effect)``, the largest increase first
        and the largest decrease (most negative) first.
    """
    if effect.dim() != 1:
        raise ValueError(f"effect must be a (d_vocab,) vector, got shape {tuple(effect.shape)}")
    k = min(int(n), effect.numel())
    effect = effect.detach().float().cpu()
    up = torch.topk(effect, k)
    down = torch.topk(-effect, k)

    def named(ids: Tensor, values: Tensor) -> list[tuple[str, float]]:
        return list(zip(decode_tokens(tokenizer, ids.tolist()), values.tolist()))

    return named(up.indices, up.values), named(down.indices, -down.values)


def logit_effect_html(model: Transformer, tokenizer, layer: int, neuron: int,
                      n: int = 10) -> str:
    """Figure 5-style two columns: the tokens the neuron promotes and suppresses.

    Args:
        model: The model.
        tokenizer: Its corpus tokenizer.
        layer: Layer of the neuron.
        neuron: Index of the neuron in the layer.
        n: Tokens per column.

    Returns:
        A self-contained HTML fragment with escaped token text and a bar per token.
    """
    increased, decreased = top_logit_tokens(direct_logit_effect(model, layer, neuron),
                                            tokenizer, n)
    scale = max([abs(v) for _, v in increased + decreased], default=0.0) or 1.0

    def column(heading: str, rows: list[tuple[str, float]], rgb: str) -> str:
        cells = []
        for token, value in rows:
            width = 100 * abs(value) / scale
            cells.append(
                "<tr>"
                f'<td class="solu-logit-tok" style="white-space:pre;padding:1px 6px;'
                f'background:#f4f4f4">{_token_html(token, line_breaks=False)}</td>'
                f'<td style="text-align:right;padding:1px 6px">{value:+.3f}</td>'
                f'<td style="width:90px"><div style="height:9px;width:{width:.0f}%;'
                f'background:rgb({rgb})"></div></td></tr>')
        return (f'<div style="margin-right:24px"><div style="font-weight:bold">{heading}</div>'
                f'<table style="border-collapse:collapse">{"".join(cells)}</table></div>')

    path = "exact up to the final LN's scale" if model.cfg.n_layers == 1 else "direct path only"
    return (f'<div class="solu-logit-effect" style="{_BOX_STYLE}margin-top:8px">'
            f'<div style="font-family:sans-serif;font-size:13px">Direct logit effect of '
            f"L{layer}N{neuron} (paper §6.3.1, {path})</div>"
            '<div style="display:flex;flex-wrap:wrap">'
            f'{column("Increases", increased, _SHADE_RGB)}'
            f'{column("Decreases", decreased, "40,90,230")}'
            "</div></div>")


# --- the widget browser ----------------------------------------------------------------------
def band_options(n_bands: int = 10) -> list[tuple[str, Band]]:
    """The browser's band menu: ``(label, band)`` pairs, as ``neuron_html`` takes them."""
    share = 100 / n_bands
    options: list[tuple[str, Band]] = [("top", "top")]
    for b in reversed(range(n_bands)):
        options.append((f"band {b} ({b * share:.0f}-{(b + 1) * share:.0f}% of max)", b))
    options += [(f"quantile {lo}-{hi}", (lo, hi)) for lo, hi in QUANTILE_BANDS]
    return options


class NeuronBrowser:
    """An ipywidgets app to browse the neurons of several harvested models.

    Controls: model, layer, neuron, a "random neuron" button (seeded), the example band and
    the hook. The page shows ``neuron_html`` and, for 1-layer models, ``logit_effect_html``.
    Display it with ``display(browser.widget)`` (or just ``browser.widget`` last in a cell).

    Args:
        entries: ``{name: (model, corpus, harvest)}``.
        seed: Seed of the random-neuron button.

    Attributes:
        widget: The ipywidgets container.
        html: The HTML currently shown.
    """

    def __init__(self, entries: dict[str, tuple[Transformer, TokenizedCorpus, Harvest]],
                 seed: int = 0):
        import ipywidgets as widgets

        if not entries:
            raise ConfigError("NeuronBrowser needs at least one (model, corpus, harvest) entry")
        for name, (model, corpus, harvest) in entries.items():
            try:
                _check_pairing(model, corpus, harvest)
            except HarvestError as exc:
                raise HarvestError(f"entry {name!r}: {exc}") from exc
        self.entries = dict(entries)
        self._rng = np.random.default_rng(seed)
        self._suspended = False
        first = next(iter(self.entries))
        self.model_select = widgets.Dropdown(options=list(self.entries), value=first,
                                             description="model")
        self.layer_input = widgets.BoundedIntText(value=0, min=0, max=0, description="layer")
        self.neuron_input = widgets.BoundedIntText(value=0, min=0, max=0, description="neuron")
        self.random_button = widgets.Button(description="random neuron")
        self.band_select = widgets.Dropdown(options=band_options(), value="top",
                                            description="examples")
        self.hook_toggle = widgets.ToggleButtons(
            options=list(HOOKS), value="mid", description="hook",
            tooltips=["activation before the extra LN (interpreted, paper §4.3)",
                      "activation after the extra LN"])
        self.hook_note = widgets.HTML()
        self.output = widgets.HTML()
        self.widget = widgets.VBox([
            widgets.HBox([self.model_select, self.layer_input, self.neuron_input,
                          self.random_button]),
            widgets.HBox([self.band_select, self.hook_toggle, self.hook_note]),
            self.output,
        ])
        self.model_select.observe(self._on_model, names="value")
        for control in (self.layer_input, self.neuron_input, self.band_select, self.hook_toggle):
            control.observe(self._render, names="value")
        self.random_button.on_click(self._on_random)
        self._configure_model()
        self._render()

    @property
    def html(self) -> str:
        return self.output.value

    def _configure_model(self) -> None:
        """Fit the layer/neuron ranges and the hook choice to the selected model."""
        model, _, harvest = self.entries[self.model_select.value]
        self.layer_input.max = model.cfg.n_layers - 1
        self.neuron_input.max = model.cfg.d_mlp - 1
        if harvest.meta.get("post_is_mid"):
            self.hook_toggle.value = "mid"
            self.hook_toggle.disabled = True
            self.hook_note.value = ("<i>no extra LN in this model: hook_post = hook_mid</i>")
        else:
            self.hook_toggle.disabled = False
            self.hook_note.value = ""

    def _on_model(self, _change: Any = None) -> None:
        if self._suspended:  # show() is setting several controls; it configures and renders
            return
        self._suspended = True
        try:
            self._configure_model()
        finally:
            self._suspended = False
        self._render()

    def _on_random(self, _button: Any = None) -> None:
        model = self.entries[self.model_select.value][0]
        layer = int(self._rng.integers(model.cfg.n_layers))
        neuron = int(self._rng.integers(model.cfg.d_mlp))
        self.show(self.model_select.value, layer, neuron)

    def show(self, model_name: str, layer: int, neuron: int, band: Band | None = None,
             hook: str | None = None) -> str:
        """Set the controls (one re-render) and return the new HTML.

        Args:
            model_name: A key of ``entries``.
            layer: Layer of the neuron.
            neuron: Index of the neuron.
            band: A value of ``band_options()`` (default: keep the current one).
            hook: ``"mid"`` or ``"post"`` (default: keep); ``"post"`` on a model without the
                extra LN shows ``"mid"``, which is the same activation.
        """
        if model_name not in self.entries:
            raise KeyError(f"no model {model_name!r} in the browser; have {list(self.entries)}")
        model = self.entries[model_name][0]
        if not (0 <= layer < model.cfg.n_layers and 0 <= neuron < model.cfg.d_mlp):
            raise IndexError(f"neuron L{layer}N{neuron} out of range: {model_name} has "
                             f"{model.cfg.n_layers} layer(s) of {model.cfg.d_mlp} neurons")
        if band is not None and band not in [value for _, value in band_options()]:
            raise ConfigError(f"band {band!r} is not one of the browser's options "
                              f"{[value for _, value in band_options()]}")
        if hook is not None:
            _check_hook(hook)
        self._suspended = True
        try:
            self.model_select.value = model_name
            self._configure_model()
            self.layer_input.value = layer
            self.neuron_input.value = neuron
            if band is not None:
                self.band_select.value = band
            if hook is not None and not self.hook_toggle.disabled:
                self.hook_toggle.value = hook
        finally:
            self._suspended = False
        self._render()
        return self.html

    def _render(self, _change: Any = None) -> None:
        if self._suspended:
            return
        model, corpus, harvest = self.entries[self.model_select.value]
        layer, neuron = self.layer_input.value, self.neuron_input.value
        try:
            page = neuron_html(model, corpus, harvest, layer, neuron, hook=self.hook_toggle.value,
                               band=self.band_select.value)
            if model.cfg.n_layers == 1:
                # paper §6.3.1: in a 1-layer model the direct path is the whole story.
                page += logit_effect_html(model, corpus.tokenizer, layer, neuron)
        except (HarvestError, ConfigError, DataError, IndexError) as exc:
            # A callback's exception would vanish into the widget log; show it instead.
            page = (f'<p class="solu-error" style="color:#b00">L{layer}N{neuron}: '
                    f"{html.escape(str(exc))}</p>")
        self.output.value = page
