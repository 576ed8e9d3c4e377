"""The reproduction scorecard: every quantitative claim of the paper beside our measurement.

Each chapter's module computes its numbers once (``design_measurements``,
``performance_measurements``, ``interp_measurements``, ``neurons_measurements``,
``layernorm_measurements``); this module only turns them into rows with a verdict decided by
a stated rule, so no number in the scorecard is typed by hand.
"""

from __future__ import annotations

import html
import math
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

REPRODUCED = "reproduced"
PARTLY = "direction only"
NOT_REPRODUCED = "not reproduced"
NOT_TESTABLE = "not testable here"
VERDICTS = (REPRODUCED, PARTLY, NOT_REPRODUCED, NOT_TESTABLE)
VERDICT_COLORS = {REPRODUCED: "#2ca02c", PARTLY: "#bcbd22", NOT_REPRODUCED: "#d62728",
                  NOT_TESTABLE: "#7f7f7f"}

GELU_SIGMOID_CLOSE = 0.05
"""'Approximated closely' (§4.2): max |GELU(x) - sigmoid(1.7x) x| below this."""
IDENTITY_TOLERANCE = 1e-9
"""LN identities (§4.3) hold in float64 to rounding error."""
PAPER_LOSS_DIFFERENCE = 0.01
"""§5: SoLU-LN and the baseline differ by about ±0.01 nats."""
SPEED_IMPLAUSIBLE = 0.97
"""A step-time ratio CI entirely below this says the timing was disturbed, not that SoLU-LN
(which adds work) is faster."""


@dataclass(frozen=True)
class Claim:
    """One row of the scorecard."""

    section: str
    claim: str
    paper: str
    ours: str
    verdict: str
    rule: str
    timed: bool = False
    """True when the verdict rests on wall-clock timing, which a busy machine can flip."""

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _depths(values: dict[int, str]) -> str:
    return "; ".join(f"{d}L: {v}" for d, v in sorted(values.items()))


def _pct(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:+.1%}"


# --- §4: SoLU's design ------------------------------------------------------------------------
def design_claims(dm) -> list[Claim]:
    """Claims of §4 from ``design.DesignMeasurements``."""
    devs = ", ".join(f"{d:.3f}" for d in dm.worked_example_deviations)
    return [
        Claim("§4.2", "SoLU(4,1,4,1) ≈ (2,0,2,0), SoLU(4,0,0,0) ≈ (4,0,0,0), "
              "SoLU(1,1,1,1) ≈ (1/4,1/4,1/4,1/4)", "≈ the stated vectors",
              f"max |computed - stated| per example: {devs}",
              REPRODUCED if dm.worked_examples_reproduced else NOT_REPRODUCED,
              f"every example within {dm.worked_example_tolerance} of the stated value "
              "(the paper writes ≈)"),
        Claim("§4.2", "GELU is approximated closely by sigmoid(1.7x)·x", "closely",
              f"max deviation {dm.gelu_sigmoid_max_deviation:.4f} (at x = "
              f"±{dm.gelu_sigmoid_at:.2f})",
              REPRODUCED if dm.gelu_sigmoid_max_deviation < GELU_SIGMOID_CLOSE
              else NOT_REPRODUCED, f"max deviation over [-10, 10] below {GELU_SIGMOID_CLOSE}"),
        Claim("§4.3", "LN is scale invariant; LN(SoLU(x)) = LN(x·exp(x))", "exact identities",
              f"max differences {dm.ln_scale_invariance_max_diff:.1e} and "
              f"{dm.ln_solu_identity_max_diff:.1e} (float64, eps = 0); with the models' eps = "
              f"{dm.eps:g} at d_mlp = {dm.d_mlp}, LN rescales a typical SoLU output by "
              f"{dm.eps_gain_median:.3f} of the exact factor",
              REPRODUCED if max(dm.ln_scale_invariance_max_diff,
                                dm.ln_solu_identity_max_diff) < IDENTITY_TOLERANCE
              else NOT_REPRODUCED, f"both below {IDENTITY_TOLERANCE:g} in float64"),
        Claim("§4.4", "Blocking the softmax and LN (tensor parallelism) has no substantial "
              "effect on performance or interpretability", "no substantial effect",
              f"blocked SoLU implemented and checked (blocks=1 equals SoLU to "
              f"{dm.blocked_equals_unblocked:.0e}; per-block softmax sums to 1 within "
              f"{dm.blocked_softmax_sum_max_dev:.0e}); no blocked model in the zoo",
              NOT_TESTABLE, "needs blocked zoo models (ModelConfig.solu_blocks)"),
    ]


# --- §5: performance --------------------------------------------------------------------------
def performance_claims(pm) -> list[Claim]:
    """Claims of §5 and the §4.3 no-LN penalty from ``performance.PerformanceMeasurements``."""
    from .performance import PAPER_MULTIPLIER_RANGE, PAPER_NO_LN_MULTIPLIER, PAPER_SPEED_OVERHEAD

    lo, hi = PAPER_MULTIPLIER_RANGE
    in_range = pm.multipliers_in_paper_range
    if not pm.multiplier_testable:
        mult_verdict, mult_ours = NOT_TESTABLE, f"no baseline scaling law: {pm.baseline.reason}"
    else:
        mult_ours = _depths({d: str(m) for d, m in pm.multiplier.items()})
        mult_verdict = (NOT_TESTABLE if in_range is None else
                        REPRODUCED if in_range else NOT_REPRODUCED)
        if pm.baseline.fit.dof == 0:
            mult_ours += " (the law interpolates as many points as it has parameters)"
    claims = [Claim("§5 / Figure 1", "SoLU-LN performs like a baseline of 0.95x-1.05x its size",
                    f"{lo:.2f}x-{hi:.2f}x", mult_ours, mult_verdict,
                    f"every depth's multiplier within {lo:.2f}x-{hi:.2f}x; not testable "
                    "without a monotone baseline scaling law or when only bounds exist")]
    deltas = pm.loss_delta
    worst = max((abs(v) for v in deltas.values()), default=math.nan)
    claims.append(Claim(
        "§5", "SoLU-LN loss within about ±0.01 nats of the baseline",
        f"±{PAPER_LOSS_DIFFERENCE}", _depths({d: f"{v:+.3f} nats" for d, v in deltas.items()}),
        NOT_TESTABLE if not deltas else
        REPRODUCED if worst <= PAPER_LOSS_DIFFERENCE else NOT_REPRODUCED,
        f"|SoLU-LN - GELU| final validation loss <= {PAPER_LOSS_DIFFERENCE} at every depth "
        "(one seed each: differences of a few hundredths are within seed noise here)"))
    per = "; ".join(f"{d}L: " + ", ".join(f"{s} {v:+.3f}" for s, v in sorted(ps.items()))
                    for d, ps in sorted(pm.per_source_delta.items()))
    claims.append(Claim(
        "§5 / Figure 2", "Similar downstream-task performance, no systematic trend",
        "similar on Lambada, ARC, OpenBookQA, HellaSwag, MMLU, TriviaQA, arithmetic",
        f"proxy only, SoLU-LN - GELU validation loss per source: {per}", NOT_TESTABLE,
        "the tasks need models far larger than ours; per-source loss is shown as a proxy"))
    if pm.no_ln is not None:
        n = pm.no_ln
        plo, phi = PAPER_NO_LN_MULTIPLIER
        value = n.multiplier.value
        if value is not None:
            verdict = REPRODUCED if plo <= value <= phi else (
                PARTLY if value < 1 else NOT_REPRODUCED)
            ours = f"{n.depth}L SoLU without LN: {n.multiplier} ({n.gap_vs_gelu:+.3f} nats vs GELU)"
        else:
            verdict = PARTLY if n.gap_vs_gelu > 0 else NOT_REPRODUCED
            ours = (f"{n.depth}L SoLU without LN: {n.gap_vs_gelu:+.3f} nats vs GELU; "
                    f"multiplier {n.multiplier}")
        claims.append(Claim(
            "§4.3", "SoLU without LN performs like a model 30-50% smaller",
            f"{plo:.1f}x-{phi:.1f}x", ours, verdict,
            f"multiplier within {plo:.1f}x-{phi:.1f}x; direction only if it is worse than the "
            "baseline but the size cannot be converted or falls outside"))
    if pm.speed is not None:
        r, (clo, chi) = pm.speed.step.ratio, pm.speed.step.ci90
        claims.append(Claim(
            "§5", "SoLU slows training by less than 1% (with proper GPU kernels)",
            f"< {PAPER_SPEED_OVERHEAD:.0%}",
            f"{pm.speed.depth}L step time ratio {r:.3f} (90% CI {clo:.3f}-{chi:.3f}), eager "
            f"PyTorch on this machine (CPU)",
            NOT_TESTABLE if chi < SPEED_IMPLAUSIBLE else
            REPRODUCED if chi < 1 + PAPER_SPEED_OVERHEAD else
            NOT_REPRODUCED if clo > 1 + PAPER_SPEED_OVERHEAD else NOT_TESTABLE,
            "reproduced if the 90% CI lies below 1.01; not reproduced if it lies above; "
            f"not testable if it straddles 1.01 or lies below {SPEED_IMPLAUSIBLE} (SoLU-LN does "
            "strictly more work, so a clearly faster SoLU-LN means the machine was disturbed). "
            "No fused kernels here", timed=True))
    return claims


# --- §6.1-6.2: interpretability, quantitative -------------------------------------------------
def interp_claims(im) -> list[Claim]:
    """Claims of §6.2 from ``interp_quant.InterpMeasurements`` (automated judge)."""
    comps = im.solu_vs_gelu
    ours = _depths({d: f"{c.diff:+.1%} [{c.lo:+.1%}, {c.hi:+.1%}]" for d, c in comps.items()})
    n_sig = sum(c.significant and c.diff > 0 for c in comps.values())
    n_pos = sum(c.diff > 0 for c in comps.values())
    verdict = (REPRODUCED if comps and n_sig == len(comps) else
               PARTLY if n_pos == len(comps) and comps else NOT_REPRODUCED)
    relative = getattr(im, "relative", {}) or {}
    if "top" in relative:
        did, did_lo, did_hi = relative["top"].diff_in_diff
        ours += (f"; net of the rotated-basis nulls (1L): {did:+.1%} [{did_lo:+.1%}, "
                 f"{did_hi:+.1%}]")
        if did_lo <= 0 and verdict == REPRODUCED:
            verdict = PARTLY  # the judge's difference is not shown to be about the basis
    claims = [Claim("§6.2 / Figure 4", "SoLU-LN neurons are more often interpretable at first "
                    "glance than baseline neurons (~60% vs ~35%, +25 points, 1.7x; 1-40 layers)",
                    "+25 points", f"automated judge, SoLU-LN - GELU: {ours}", verdict,
                    "reproduced if the 95% Newcombe interval is above 0 at every depth and, "
                    "where the nulls were scored, SoLU-LN's gain net of the rotated-basis "
                    "nulls is above 0 too; direction only if every point estimate is "
                    "positive")]
    nulls = getattr(im, "nulls", {}) or {}
    if nulls:
        gains = {name: nc.gain("rotated", "spectrum") for name, nc in nulls.items()
                 if "rotated" in nc.nulls}
        ours_null = "; ".join(f"{n}: {d:+.1%} [{lo:+.1%}, {hi:+.1%}]"
                              for n, (d, lo, hi) in gains.items())
        claims.append(Claim(
            "§3.2 (privileged basis)", "A coordinate-wise nonlinearity makes the MLP's neuron "
            "basis privileged, so features plausibly align with it: neurons more interpretable "
            "than random directions of the same space", "plausible, not guaranteed; no number", f"full-spectrum judge, neuron basis - rotated basis: {ours_null}",
            REPRODUCED if gains and all(lo > 0 for _, lo, _ in gains.values()) else
            PARTLY if gains and all(d > 0 for d, _, _ in gains.values()) else NOT_REPRODUCED,
            "reproduced if every 1-layer model's neuron basis beats its random rotation over "
            "the full spectrum (95% Newcombe interval above 0; the top-20 view is nearly "
            "blind to rotation); direction only if every point estimate is positive"))
    spec = im.solu_vs_gelu_spectrum
    claims.append(Claim(
        "§6.1 note", "Top examples may not reflect the whole activation spectrum "
        "(added after publication)", "a caution, no number",
        "full-spectrum judge, SoLU-LN - GELU: " +
        _depths({d: f"{c.diff:+.1%} [{c.lo:+.1%}, {c.hi:+.1%}]" for d, c in spec.items()}),
        NOT_TESTABLE, "reported beside the top-20 view; the paper gives no number to compare"))
    if im.ablation is not None and im.ablation_vs_solu is not None:
        a, b = im.ablation, im.ablation_vs_solu
        between = a.diff > 0 and b.diff < 0
        claims.append(Claim(
            "§6.2", "The LN-only ablation scores about halfway between baseline and SoLU-LN "
            "(16 layers)", "halfway",
            f"{a.name}: {a.diff:+.1%} vs {a.baseline} [{a.lo:+.1%}, {a.hi:+.1%}], "
            f"{b.diff:+.1%} vs {b.baseline} [{b.lo:+.1%}, {b.hi:+.1%}]",
            REPRODUCED if between and a.lo > 0 and b.hi < 0 else
            PARTLY if between else NOT_REPRODUCED,
            "reproduced if above the baseline and below SoLU-LN, both intervals excluding 0; "
            "direction only if the point estimates are in between. Our ablation has 1 layer, "
            "the paper's 16"))
    claims.append(Claim("§6.2", "At 64 layers the gain shrinks (42% vs 33%)", "42% vs 33%",
                        f"our deepest models have {max(comps, default=0)} layers", NOT_TESTABLE,
                        "needs 64-layer models"))
    judged = [s for s in im.blind if s.n_judgments]
    if judged:
        parts = []
        for s in judged:
            diffs = ", ".join(f"{a} - {b}: {_pct(d)} [{_pct(lo)}, {_pct(hi)}]"
                              for a, b, d, lo, hi in _oriented(s.report.differences))
            parts.append(f"{s.path.name} ({s.n_judgments} judgments): {diffs}")
        ours, verdict = "; ".join(parts), _human_verdict(judged)
    else:
        ours, verdict = "no blinded session with judgments in this copy of the book", NOT_TESTABLE
    claims.append(Claim("§6.1-6.2", "Blinded human evaluators (the paper's measurement)",
                        "+25 points", ours, verdict,
                        "reproduced if a session's SoLU-LN - GELU interval is above 0"))
    return claims


def _oriented(differences) -> list[tuple[str, str, float, float, float]]:
    """Blinded differences as (a, b, a - b, lo, hi) with a SoLU-LN model first when present."""
    out = []
    for d in differences:
        if d.model_b.endswith("-solu_ln") and not d.model_a.endswith("-solu_ln"):
            out.append((d.model_b, d.model_a, -d.diff, -d.hi, -d.lo))
        else:
            out.append((d.model_a, d.model_b, d.diff, d.lo, d.hi))
    return out


def _human_verdict(summaries) -> str:
    diffs = [(d, lo) for s in summaries for a, b, d, lo, _ in _oriented(s.report.differences)
             if a.endswith("-solu_ln") and b.endswith("-gelu")]
    if not diffs:
        return NOT_TESTABLE
    if all(lo > 0 for _, lo in diffs):
        return REPRODUCED
    return PARTLY if all(d > 0 for d, _ in diffs) else NOT_REPRODUCED


# --- §6.3: neurons across layers ---------------------------------------------------------------
def _shift_claim(section: str, claim: str, shift, what: str) -> Claim:
    if shift is None or shift.n == 0 or shift.other_n == 0:
        return Claim(section, claim, "qualitative", "not measurable: too few interpretable "
                     "neurons in the layers compared" if shift is not None else
                     "no model deep enough", NOT_TESTABLE, what)
    ours = (f"{shift.count}/{shift.n} = {shift.share:.0%} vs {shift.other_count}/"
            f"{shift.other_n} = {shift.other_share:.0%} elsewhere, difference "
            f"{shift.diff:+.0%} [{shift.lo:+.0%}, {shift.hi:+.0%}]")
    verdict = (REPRODUCED if shift.significant else PARTLY if shift.direction_agrees
               else NOT_REPRODUCED)
    return Claim(section, claim, "qualitative", ours, verdict, what)


def neurons_claims(nm) -> list[Claim]:
    """Claims of §6.3 from ``neurons.NeuronsMeasurements`` (the deepest SoLU-LN model)."""
    rule = ("share among interpretable neurons (automated judge) higher than in the other "
            "layers: reproduced if the 95% interval excludes 0, direction only if the point "
            "estimate is higher")
    model = nm.deepest or "no multi-layer model"
    return [
        _shift_claim("§6.3.2", f"Early layers hold de-tokenization neurons ({model}, first "
                     "layer)", nm.early_detokenization, rule),
        _shift_claim("§6.3.3", f"Late layers hold re-tokenization neurons ({model}, last "
                     "layer)", nm.late_retokenization, rule),
        _shift_claim("§6.3.4", f"Middle layers hold abstract neurons ({model})",
                     nm.middle_abstract, rule),
    ]


# --- §6.4: LayerNorm ----------------------------------------------------------------------------
def layernorm_claims(lm) -> list[Claim]:
    """Claim of §6.4 / Figure 9 from ``layernorm.LayerNormMeasurements``."""
    low = lm.low
    if low.mid_examples == 0 or low.post_examples == 0:
        ours, verdict = "no interpretable SoLU-LN neuron to sample", NOT_TESTABLE
    else:
        ours = (f"{low.bands}: inconsistent before the LN {low.mid_fraction:.0%}, after "
                f"{low.post_fraction:.0%}; after - before {low.diff:+.0%} [{low.lo:+.0%}, "
                f"{low.hi:+.0%}] ({', '.join(lm.models)})")
        verdict = (REPRODUCED if low.significant else PARTLY if low.post_exceeds_mid
                   else NOT_REPRODUCED)
    return [Claim("§6.4 / Figure 9", "After the extra LN, low-activation examples are more "
                  "often inconsistent with the neuron's feature", "much more (one neuron, "
                  "~1000 examples, not blinded)", ours, verdict,
                  "automated judge's explanation as the hypothesis, pooled over interpretable "
                  "neurons; reproduced if post - pre is above 0 with 95% confidence")]


# --- the whole scorecard ------------------------------------------------------------------------
def scorecard(design=None, performance=None, interp=None, neurons=None, layernorm=None
              ) -> list[Claim]:
    """All claims whose measurements are given, in paper order."""
    claims: list[Claim] = []
    if design is not None:
        claims += design_claims(design)
    if performance is not None:
        claims += performance_claims(performance)
    if interp is not None:
        claims += interp_claims(interp)
    if neurons is not None:
        claims += neurons_claims(neurons)
    if layernorm is not None:
        claims += layernorm_claims(layernorm)
    order = lambda c: [int(p) if p.isdigit() else 0
                       for p in c.section.split()[0].lstrip("§").split("-")[0].split(".")]
    return sorted(claims, key=order)


def counts(claims: list[Claim], timed: bool | None = None) -> dict[str, int]:
    """Claims per verdict; ``timed=False`` counts only verdicts that do not rest on a stopwatch
    (what a regression test can pin), ``timed=True`` only those that do, ``None`` all."""
    c = Counter(claim.verdict for claim in claims if timed is None or claim.timed == timed)
    return {v: c.get(v, 0) for v in VERDICTS}


def scorecard_html(claims: list[Claim]) -> str:
    """The scorecard as an HTML table (every field escaped), verdicts coloured."""
    head = "".join(f"<th style='text-align:left;padding:4px'>{h}</th>"
                   for h in ("section", "claim", "paper", "ours", "verdict"))
    rows = []
    for c in claims:
        cells = [html.escape(x) for x in (c.section, c.claim, c.paper, c.ours)]
        badge = (f"<span title='{html.escape(c.rule)}' style='background:"
                 f"{VERDICT_COLORS[c.verdict]};color:white;padding:1px 6px;border-radius:3px;"
                 f"white-space:nowrap'>{html.escape(c.verdict)}</span>")
        rows.append("<tr>" + "".join(f"<td style='vertical-align:top;padding:4px'>{x}</td>"
                                     for x in cells + [badge]) + "</tr>")
    return (f"<table class='solu-scorecard' style='border-collapse:collapse;font-size:90%'>"
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>")


def scorecard_text(claims: list[Claim]) -> str:
    """One line per claim: section, verdict, claim."""
    return "\n".join(f"{c.section:<16} {c.verdict:<18} {c.claim[:70]}" for c in claims)


def rules_markdown(claims: list[Claim]) -> str:
    return "\n".join(f"- **{c.section}, {c.claim}**: {c.rule}." for c in claims)
