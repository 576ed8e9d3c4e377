"""A neuron as a card on a chapter page: the scorer's verdict, its dataset examples (Figure 3
style) and its direct logit effect (Figure 5 style). Every piece of corpus text is escaped
(``solu_repro.interp.view``)."""

from __future__ import annotations

import html
from typing import Any, Sequence

from ..fmt import num, pct
from ..interp.analysis import LAYER_ROLES
from ..interp.ranking import explanation_kind
from ..interp.score import NeuronScore
from ..interp.view import logit_effect_html, neuron_html


ROLE_LABELS = {
    "token": "current token",
    "detokenization": "token in context (de-tokenization)",
    "token_class": "token class or text pattern",
    "source": "source of the text",
    "retokenization": "next token (re-tokenization)",
}


_CARD_STYLE = ("border:1px solid #ccc;border-radius:4px;padding:6px 8px;margin:10px 0;"
               "background:#fff;color:#111")


_VERDICT_STYLE = "font-family:sans-serif;font-size:13px;margin-bottom:4px"


def verdict_html(record: NeuronScore, model_name: str) -> str:
    """The scorer's verdict on one neuron as an escaped one-line header."""
    verdict = ("interpretable (top-20 rule)" if record.interpretable
               else "NOT interpretable by the scorer")
    color = "#1a7f37" if record.interpretable else "#b35900"
    numbers = (f"covers {pct(record.coverage, 0)} of the top firings · "
               f"{num(record.lift, '.0f')}x its base rate · held-out precision "
               f"{num(record.precision, '.2f')}, recall {num(record.recall, '.2f')}")
    role = ROLE_LABELS.get(LAYER_ROLES.get(explanation_kind(record), ""), "no role")
    return (f'<div class="solu-verdict" style="{_VERDICT_STYLE}">'
            f"<b>{html.escape(model_name)} L{record.layer}N{record.neuron}</b> · "
            f'<span style="color:{color};font-weight:bold">{verdict}</span><br>'
            f'scorer\'s explanation: <span class="solu-explanation" '
            f'style="font-family:monospace;background:#f4f4f4">{html.escape(record.text)}'
            f"</span> ({html.escape(role)})<br>"
            f'<span style="color:#555;font-size:12px">{numbers}</span></div>')


def neuron_card_html(model, corpus, harvest, record: NeuronScore, model_name: str, *,
                     n_examples: int = 8, n_logits: int = 8, band: Any = "top",
                     hook: str = "mid", logits: bool = True, seed: int = 0) -> str:
    """One neuron's card: the scorer's verdict, Figure 3-style examples and (optionally) the
    Figure 5-style direct logit effect.

    Args:
        model, corpus, harvest: The model, its corpus and its harvest.
        record: The neuron's ``NeuronScore``.
        model_name: Shown in the header (escaped).
        n_examples: Dataset examples shown.
        n_logits: Tokens per column of the logit effect.
        band: ``"top"`` or a band, as ``neuron_html`` takes it.
        hook: ``"mid"`` (interpreted) or ``"post"``.
        logits: Add the direct logit effect.
        seed: Seed of band samples.
    """
    parts = [f'<div class="solu-card" style="{_CARD_STYLE}">', verdict_html(record, model_name),
             neuron_html(model, corpus, harvest, record.layer, record.neuron, hook=hook,
                         band=band, n=n_examples, seed=seed, left=24, right=4)]
    if logits:
        parts.append(logit_effect_html(model, corpus.tokenizer, record.layer, record.neuron,
                                       n=n_logits))
    parts.append("</div>")
    return "".join(parts)


def neuron_cards_html(ctx, name: str, records: Sequence[NeuronScore], *, n_examples: int = 8,
                      n_logits: int = 8, logits: bool = True, empty: str = "No neurons.") -> str:
    """Cards of several neurons of the zoo model ``name`` (see ``neuron_card_html``)."""
    if not records:
        return (f'<p class="solu-empty" style="font-family:sans-serif;color:#555">'
                f"{html.escape(empty)}</p>")
    run = ctx.run(name)
    model, corpus, harvest = run.load_model(), run.corpus(), ctx.harvest(name)
    return "".join(neuron_card_html(model, corpus, harvest, r, name, n_examples=n_examples,
                                    n_logits=n_logits, logits=logits, seed=ctx.seed)
                   for r in records)


def side_by_side_html(columns: dict[str, str]) -> str:
    """HTML fragments in equal columns, each under its (escaped) title."""
    cells = "".join(
        '<div style="flex:1 1 0;min-width:280px">'
        f'<div style="font-family:sans-serif;font-weight:bold;font-size:14px;margin:4px 0">'
        f"{html.escape(title)}</div>{body}</div>"
        for title, body in columns.items())
    return ('<div class="solu-side-by-side" style="display:flex;gap:16px;flex-wrap:wrap">'
            f"{cells}</div>")

