"""Unblinding: which model each judged neuron came from, and how the models compare (§6.2).

Each model's fraction interpretable gets a Wilson interval, each pair of models a Newcombe
interval for their difference; with several evaluators, each is also reported alone, with
their agreement (Cohen's kappa).
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

from ..stats import Proportion, agreement, cohen_kappa, difference_interval, proportion
from .protocol import JUDGMENTS
from .session import BlindSession
from .store import Judgment


@dataclass(frozen=True)
class ModelResult:
    """One model's judgments: ``fraction_interpretable`` with its Wilson interval."""

    model: str
    n_items: int
    n_interpretable: int
    n_not_interpretable: int
    n_skipped: int
    n_pending: int
    fraction_interpretable: Proportion

    @property
    def n_judged(self) -> int:
        """Judgments in the denominator (skips excluded)."""
        return self.n_interpretable + self.n_not_interpretable

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "n_judged": self.n_judged}


@dataclass(frozen=True)
class ModelDifference:
    """``fraction(model_a) - fraction(model_b)`` with Newcombe's hybrid score interval."""

    model_a: str
    model_b: str
    diff: float
    lo: float
    hi: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RaterAgreement:
    """Two evaluators on the items both judged (skips excluded)."""

    evaluator_a: str
    evaluator_b: str
    n_items: int
    agreement: float
    kappa: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class BlindReport:
    """Unblinded results: per model, pairwise differences, per evaluator, agreement.

    ``models`` pools every evaluator's latest judgments. With several evaluators judging the
    same neurons those are not independent, so the pooled intervals are too narrow; the
    per-evaluator results have honest intervals.
    """

    session: str
    confidence: float
    evaluators: list[str]
    models: list[ModelResult]
    differences: list[ModelDifference]
    per_evaluator: dict[str, list[ModelResult]] = field(default_factory=dict)
    per_evaluator_differences: dict[str, list[ModelDifference]] = field(default_factory=dict)
    agreement: list[RaterAgreement] = field(default_factory=list)

    def model(self, name: str, evaluator: str | None = None) -> ModelResult:
        rows = self.models if evaluator is None else self.per_evaluator[evaluator]
        return next(r for r in rows if r.model == name)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON (undefined values, e.g. a fraction of 0 judged, are None)."""
        return _nan_to_none({
            "session": self.session, "confidence": self.confidence,
            "evaluators": self.evaluators,
            "models": [r.to_dict() for r in self.models],
            "differences": [d.to_dict() for d in self.differences],
            "per_evaluator": {e: [r.to_dict() for r in rows]
                              for e, rows in self.per_evaluator.items()},
            "per_evaluator_differences": {e: [d.to_dict() for d in rows]
                                          for e, rows in self.per_evaluator_differences.items()},
            "agreement": [a.to_dict() for a in self.agreement],
        })

    def to_markdown(self) -> str:
        pct = f"{self.confidence:.0%}"
        who = ", ".join(self.evaluators) or "nobody yet"
        lines = ["## Blinded evaluation (paper §6.1): fraction of neurons interpretable", "",
                 f"Session `{self.session}`; evaluators: {who}. {pct} intervals: Wilson "
                 "score for fractions, Newcombe hybrid score for differences. Skips are "
                 "excluded from the denominators.", ""]
        lines += _results_table(self.models, pct) + [""]
        lines += _differences_table(self.differences, pct)
        if len(self.evaluators) > 1:
            lines += ["", "Pooled over evaluators: judgments of the same neuron by different "
                      "evaluators are not independent, so the pooled intervals are too "
                      "narrow; the per-evaluator tables below are the honest ones.", ""]
            for evaluator in self.evaluators:
                lines += [f"### Evaluator {evaluator}", ""]
                lines += _results_table(self.per_evaluator[evaluator], pct) + [""]
                lines += _differences_table(self.per_evaluator_differences[evaluator], pct)
                lines += [""]
            lines += _agreement_table(self.agreement)
        return "\n".join(lines).rstrip() + "\n"


def _nan_to_none(obj: Any) -> Any:
    # Strict JSON has no NaN; the book reads these numbers with json.
    if isinstance(obj, float) and obj != obj:
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_nan_to_none(v) for v in obj]
    return obj


def _pct(x: float) -> str:
    return "n/a" if x != x else f"{x:.1%}"


def _results_table(rows: list[ModelResult], pct: str) -> list[str]:
    out = [f"| model | judged | interpretable | fraction | {pct} CI | skipped | pending |",
           "|---|---:|---:|---:|---|---:|---:|"]
    for r in rows:
        p = r.fraction_interpretable
        out.append(f"| {r.model} | {r.n_judged} | {r.n_interpretable} | {_pct(p.fraction)} | "
                   f"{_pct(p.lo)} – {_pct(p.hi)} | {r.n_skipped} | {r.n_pending} |")
    return out


def _differences_table(rows: list[ModelDifference], pct: str) -> list[str]:
    if not rows:
        return []
    out = [f"| comparison | difference | {pct} CI |", "|---|---:|---|"]
    for d in rows:
        diff = "n/a" if d.diff != d.diff else f"{d.diff * 100:+.1f} pp"
        out.append(f"| {d.model_a} − {d.model_b} | {diff} | "
                   f"{d.lo * 100:+.1f} to {d.hi * 100:+.1f} pp |")
    return out


def _agreement_table(rows: list[RaterAgreement]) -> list[str]:
    if not rows:
        return []
    out = ["### Agreement between evaluators", "",
           "| evaluators | items both judged | agreement | Cohen's kappa |", "|---|---:|---:|---:|"]
    for a in rows:
        kappa = "n/a" if a.kappa != a.kappa else f"{a.kappa:.2f}"
        out.append(f"| {a.evaluator_a} / {a.evaluator_b} | {a.n_items} | "
                   f"{_pct(a.agreement)} | {kappa} |")
    return out


def _model_results(session: BlindSession, judgments: Iterable[Judgment], n_evaluators: int,
                   confidence: float) -> list[ModelResult]:
    counts = {m: {j: 0 for j in JUDGMENTS} for m in session.models}
    for j in judgments:
        counts[session.item(j.item).model][j.judgment] += 1
    n_items = {m: sum(it.model == m for it in session.items) for m in session.models}
    out = []
    for m, c in counts.items():
        yes, no, skip = c["interpretable"], c["not_interpretable"], c["skip"]
        pending = n_items[m] * max(n_evaluators, 1) - (yes + no + skip)
        out.append(ModelResult(m, n_items[m], yes, no, skip, pending,
                               proportion(yes, yes + no, confidence)))
    return out


def _differences(results: list[ModelResult], confidence: float) -> list[ModelDifference]:
    # Later model minus earlier: with the baseline listed first (as in `--models 1L-gelu
    # 1L-solu_ln`) this is SoLU minus baseline, the paper's ~+25 points (§6.2).
    out = []
    for a, b in itertools.combinations(results, 2):
        d, lo, hi = difference_interval(b.n_interpretable, b.n_judged, a.n_interpretable,
                                        a.n_judged, confidence)
        out.append(ModelDifference(b.model, a.model, d, lo, hi))
    return out


def _rater_agreement(session: BlindSession, evaluators: list[str]) -> list[RaterAgreement]:
    out = []
    for ea, eb in itertools.combinations(evaluators, 2):
        ja, jb = session.judged(ea), session.judged(eb)
        common = [i for i in ja if i in jb and ja[i].interpretable is not None
                  and jb[i].interpretable is not None]
        a = [ja[i].interpretable for i in common]
        b = [jb[i].interpretable for i in common]
        if common:
            out.append(RaterAgreement(ea, eb, len(common), agreement(a, b), cohen_kappa(a, b)))
        else:
            out.append(RaterAgreement(ea, eb, 0, float("nan"), float("nan")))
    return out


def unblind(session: BlindSession, confidence: float = 0.95,
            by_evaluator: bool = True) -> BlindReport:
    """Reveal which model each judged neuron came from and compare the models (paper §6.2).

    Each evaluator's latest judgment of each item counts once; skips are left out of the
    denominators and reported.

    Args:
        session: The session to unblind (its judgments file is re-read first).
        confidence: Coverage of the intervals.
        by_evaluator: Also report each evaluator separately, and their agreement.
    """
    session.reload()
    evaluators = session.evaluators()
    latest = list(session.latest().values())
    models = _model_results(session, latest, len(evaluators), confidence)
    report = BlindReport(str(session.path), confidence, evaluators, models,
                         _differences(models, confidence))
    if by_evaluator:
        for e in evaluators:
            rows = _model_results(session, session.judged(e).values(), 1, confidence)
            report.per_evaluator[e] = rows
            report.per_evaluator_differences[e] = _differences(rows, confidence)
        report.agreement = _rater_agreement(session, evaluators)
    return report


def judgments_by_neuron(session: BlindSession,
                        evaluator: str | None = None) -> dict[tuple[str, int, int], bool]:
    """``(model, layer, neuron) -> interpretable?`` for comparing humans to an automated scorer.

    Each evaluator's latest non-skip judgment is one vote; the majority decides. Neurons with
    no vote, or a tied vote, are left out.

    Args:
        session: The session.
        evaluator: Use only this evaluator's judgments (default: all).
    """
    votes: dict[str, list[bool]] = {}
    for j in session.latest(evaluator).values():
        if j.interpretable is not None:
            votes.setdefault(j.item, []).append(j.interpretable)
    out = {}
    for item_id, v in votes.items():
        yes = sum(v)
        if 2 * yes != len(v):
            out[session.item(item_id).key] = 2 * yes > len(v)
    return out
