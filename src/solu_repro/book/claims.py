"""The registry of the paper's claims: one object per claim, decided once.

Every claim the book checks is declared here once (``CLAIMS``), with the paper's statement,
the paper's number, the chapter that measures it and the rule that turns the measurement into
a verdict. The chapter's module computes the measurement and scores the claim
(``scored(claim_id, ours=..., verdict=..., sentence=...)``); the chapter notebook saves the
scored claims (``record``) and glues each claim's sentence into its text (``glue_claims``).
Chapter 8 loads the saved claims (``load``) and renders them: it measures nothing, so a number
quoted in a chapter and in the scorecard is the same number.

Two kinds of claim are kept apart and counted separately: *identities* (algebra and worked
examples of §4, true of the functions whatever the models learned) and *empirical* claims
(about trained models, decided with seed-level uncertainty where the zoo has seeds).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..atomic import write_text

REPRODUCED = "reproduced"
PARTLY = "direction only"
NOT_REPRODUCED = "not reproduced"
INCONCLUSIVE = "inconclusive"
"""Testable here, but the seed-level interval straddles the rule's boundary: more seeds would
decide it. Not the same as "not reproduced", which needs the measurement to disagree."""
NOT_TESTABLE = "not testable here"
VERDICTS = (REPRODUCED, PARTLY, INCONCLUSIVE, NOT_REPRODUCED, NOT_TESTABLE)

IDENTITY = "identity"
EMPIRICAL = "empirical"
KINDS = (IDENTITY, EMPIRICAL)
KIND_LABELS = {IDENTITY: "identities and worked examples (§4: true of the functions)",
               EMPIRICAL: "empirical claims (about trained models)"}

# --- the paper's numbers (one name each) ---------------------------------------------------------
PAPER_LOSS_MARGIN = 0.01
"""§5: SoLU-LN's loss is within about ±0.01 nats of the baseline's."""
PAPER_MULTIPLIER_RANGE = (0.95, 1.05)
"""§5 / Figure 1: SoLU-LN performs like a baseline 0.95x-1.05x its size."""
PAPER_NO_LN_MULTIPLIER = (0.5, 0.7)
"""§4.3: SoLU without LN performs like a model 30-50% smaller."""
PAPER_SPEED_OVERHEAD = 0.01
"""§5: SoLU slows training by less than 1% with proper GPU kernels."""


@dataclass(frozen=True)
class ClaimSpec:
    """What the paper says and how the book decides it (static; ``Claim`` adds the result)."""

    id: str
    section: str
    statement: str
    paper: str
    kind: str
    chapter: str
    """The notebook that measures it (its file stem, e.g. "03-performance")."""
    rule: str

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"claim {self.id}: kind must be one of {KINDS}, got {self.kind!r}")


SEED_RULE = ("intervals are over seeds (a t interval on the per-seed values, or on matched "
             "seed pairs' differences); with one seed there is no interval and at most "
             "'direction only'; a point estimate against the claim whose interval still "
             "reaches the claim's side is 'inconclusive', and 'not reproduced' needs the whole "
             "interval against it")

CLAIMS: tuple[ClaimSpec, ...] = (
    # --- §3-4: design ----------------------------------------------------------------------
    ClaimSpec("worked_examples", "§4.2", "SoLU(4,1,4,1) ≈ (2,0,2,0), SoLU(4,0,0,0) ≈ (4,0,0,0), "
              "SoLU(1,1,1,1) ≈ (1/4,1/4,1/4,1/4)", "≈ the stated vectors", IDENTITY,
              "02-solu-design", "every example within the stated tolerance of the stated value "
              "(the paper writes ≈)"),
    ClaimSpec("gelu_sigmoid", "§4.2", "GELU is approximated closely by sigmoid(1.7x)·x",
              "closely", IDENTITY, "02-solu-design",
              "max deviation over [-10, 10] below the stated closeness"),
    ClaimSpec("ln_identities", "§4.3", "LN is scale invariant; LN(SoLU(x)) = LN(x·exp(x))",
              "exact identities", IDENTITY, "02-solu-design", "both below 1e-9 in float64"),
    ClaimSpec("trained_sparsity", "§4.1-4.2", "SoLU's activations are sparse and superlinear "
              "in trained models: a neuron's output is concentrated in its few largest "
              "activations, more than GELU's", "qualitative (the design's purpose)", EMPIRICAL,
              "02-solu-design", "median over positions of the share of each position's positive "
              "pre-LN activation (hook_mid) held by its top neuron, per 1-layer model; SoLU-LN "
              "minus GELU over matched seeds (paired t); " + SEED_RULE + "; reproduced if the "
              "seed interval is above 0, direction only if the seed mean is; the same models "
              "untrained (same init) are reported as the control"),
    # --- §5: performance -------------------------------------------------------------------
    ClaimSpec("size_multiplier", "§5 / Figure 1", "SoLU-LN performs like a baseline of "
              "0.95x-1.05x its size", "0.95x-1.05x", EMPIRICAL, "03-performance",
              "every depth's multiplier within 0.95x-1.05x; not testable without a monotone "
              "baseline scaling law or when only bounds exist"),
    ClaimSpec("loss_parity", "§5", "SoLU-LN's loss is within about ±0.01 nats of the "
              "baseline's", "±0.01 nats", EMPIRICAL, "03-performance",
              "TOST equivalence test over matched 1-layer seed pairs with the paper's margin "
              "±0.01 nats: reproduced if equivalent at α = 0.05; direction only if only "
              "non-inferior (the 90% interval's upper end below +0.01: SoLU-LN not worse); "
              "not reproduced if the 90% interval lies wholly outside ±0.01; inconclusive "
              "otherwise (the interval straddles the margin)"),
    ClaimSpec("downstream", "§5 / Figure 2", "Similar downstream-task performance, no "
              "systematic trend", "similar on Lambada, ARC, OpenBookQA, HellaSwag, MMLU, "
              "TriviaQA, arithmetic", EMPIRICAL, "03-performance",
              "the tasks need models far larger than ours; per-source loss is shown as a "
              "proxy"),
    ClaimSpec("no_ln_penalty", "§4.3", "SoLU without LN performs like a model 30-50% smaller",
              "0.5x-0.7x", EMPIRICAL, "03-performance",
              "SoLU (no LN) minus GELU loss over matched seeds, and its size multiplier: "
              "reproduced if the seed interval of the loss gap is above 0 and the multiplier "
              "is within 0.5x-0.7x; direction only if the gap's seed mean is above 0 (or its "
              "interval is, with the size outside or not convertible); otherwise " 
              "inconclusive, or not reproduced if the whole interval is at or below 0"),
    ClaimSpec("speed", "§5", "SoLU slows training by less than 1% (with proper GPU kernels)",
              "< 1%", EMPIRICAL, "03-performance",
              "on a CPU not testable by design (eager CPU timing cannot test fused GPU "
              "kernels). On a GPU the unfused step is timed: reproduced if even its 90% CI of "
              "the SoLU-LN/GELU step-time ratio lies below 1.01 (a fused kernel only does "
              "better); inconclusive otherwise (an unfused overhead above 1% says nothing "
              "about a fused kernel)"),
    ClaimSpec("blocked_loss", "§4.4", "Blocking SoLU's softmax and LN (for tensor "
              "parallelism) has no substantial effect on performance", "no substantial "
              "effect", EMPIRICAL, "03-performance",
              "blocked SoLU-LN (4 blocks) minus SoLU-LN loss over seeds: reproduced if the "
              "TOST with margin ±0.01 nats finds them equivalent; direction only if the "
              "blocked model is non-inferior; not reproduced if the 90% interval lies wholly "
              "outside ±0.01; inconclusive otherwise"),
    # --- §6.1-6.2: interpretability, quantitative -------------------------------------------
    ClaimSpec("figure4", "§6.2 / Figure 4", "SoLU-LN neurons are more often interpretable at "
              "first glance than baseline neurons (~60% vs ~35%, +25 points, 1.7x; 1-40 "
              "layers)", "+25 points", EMPIRICAL, "04-interpretability-quantitative",
              "automated judge, top-20 view, SoLU-LN minus GELU over matched 1-layer seed "
              "pairs: reproduced if the seed interval is above 0, net of the rotated-basis "
              "nulls the gain's seed interval is above 0 too, and every deeper pair's point "
              "estimate is positive; direction only if the seed mean (and every deeper pair's "
              "point estimate) is positive; " + SEED_RULE),
    ClaimSpec("privileged_basis", "§3.2 (privileged basis)", "A coordinate-wise nonlinearity "
              "makes the MLP's neuron basis privileged: neurons more interpretable than "
              "random directions of the same space", "plausible, not guaranteed; no number",
              EMPIRICAL, "04-interpretability-quantitative",
              "full-spectrum judge, neuron basis minus rotated basis, per 1-layer seed: "
              "reproduced if the seed interval is above 0 for both activations; direction "
              "only if every seed mean is positive; " + SEED_RULE),
    ClaimSpec("spectrum_note", "§6.1 note", "Top examples may not reflect the whole "
              "activation spectrum (added after publication)", "a caution, no number",
              EMPIRICAL, "04-interpretability-quantitative",
              "reported beside the top-20 view; the paper gives no number to compare"),
    ClaimSpec("solu_alone", "§4.3", "SoLU alone (without the LN) makes neurons more "
              "interpretable, and adding the LN keeps most of that gain", "qualitative",
              EMPIRICAL, "04-interpretability-quantitative",
              "top-20 judge over seeds: reproduced if SoLU (no LN) minus GELU has a seed "
              "interval above 0 and SoLU-LN is not below SoLU by more than half of SoLU's "
              "gain (point estimates); direction only if the SoLU gain's point estimate is "
              "positive; " + SEED_RULE),
    ClaimSpec("ln_only_halfway", "§6.2", "The LN-only ablation scores about halfway between "
              "baseline and SoLU-LN (16 layers)", "halfway", EMPIRICAL,
              "04-interpretability-quantitative",
              "GELU-LN over seeds: reproduced if above GELU and below SoLU-LN with both seed "
              "intervals excluding 0; direction only if the seed means are in between; "
              + SEED_RULE + ". Our ablation has 1 layer, the paper's 16"),
    ClaimSpec("stricter_annotator", "§6.2", "One annotator held a higher bar; the SoLU-LN "
              "advantage holds for the stricter one too", "consistent under both", EMPIRICAL,
              "04-interpretability-quantitative",
              "the judge re-run with a higher bar (coverage 90% of the top firings instead of "
              "80%, lift 5 instead of 3: interp_quant.STRICT), SoLU-LN minus GELU over "
              "matched 1-layer seeds: reproduced if the seed interval is above 0 under both "
              "judges; direction only if both seed means are positive; " + SEED_RULE),
    ClaimSpec("blocked_interp", "§4.4", "Blocking SoLU's softmax and LN has no substantial "
              "effect on interpretability", "no substantial effect", EMPIRICAL,
              "04-interpretability-quantitative",
              "top-20 judge, blocked SoLU-LN minus SoLU-LN over matched seeds (paired t, 95%): "
              "reproduced if the interval lies within ±10 points (at least 2 seeds); not "
              "reproduced if it lies wholly outside; direction only if the point estimate lies "
              "within; inconclusive otherwise"),
    ClaimSpec("depth64", "§6.2", "At 64 layers the gain shrinks (42% vs 33%)", "42% vs 33%",
              EMPIRICAL, "04-interpretability-quantitative", "needs 64-layer models"),
    ClaimSpec("human_blind", "§6.1-6.2", "Blinded human evaluators (the paper's measurement)",
              "+25 points", EMPIRICAL, "04-interpretability-quantitative",
              "matched pairs only (same depth and seed): reproduced if every session's SoLU-LN "
              "minus GELU interval is above 0, otherwise the weakest session's verdict by the "
              "directional rule"),
    # --- §6.3: neurons ----------------------------------------------------------------------
    ClaimSpec("logit_agreement", "§6.3.1", "In 1-layer models the neurons' direct logit "
              "effects corroborate their dataset examples", "qualitative (neuron by neuron)",
              EMPIRICAL, "05-one-layer-neurons",
              "per 1-layer SoLU-LN seed, the median over neurons of the percentile, in the "
              "neuron's direct logit effect, of the tokens that follow its 20 strongest "
              "firings, for the judge's interpretable neurons minus a seeded random sample of "
              "64 live neurons of the same model (the control); t interval over the per-seed "
              "differences: reproduced if it is above 0, direction only if the seed mean is; "
              "not testable if no seed has an interpretable neuron; " + SEED_RULE),
    ClaimSpec("early_detokenization", "§6.3.2", "SoLU helps early-layer neurons: the first "
              "layer holds more de-tokenization neurons than the baseline's", "qualitative",
              EMPIRICAL, "06-neurons-across-layers",
              "share of the first layer's neurons (all of them) that the judge calls "
              "interpretable with a de-tokenization explanation (previous token or bigram), "
              "SoLU-LN minus GELU of the same depth (the deepest pair; 95% Newcombe interval "
              "over neurons, one seed each): one seed, so at most direction only: direction "
              "only if the point estimate is above 0, not reproduced if the whole interval is "
              "at or below 0, inconclusive otherwise; not testable if neither first layer has "
              "an interpretable neuron"),
    ClaimSpec("late_retokenization", "§6.3.3", "Late layers hold re-tokenization neurons",
              "qualitative", EMPIRICAL, "06-neurons-across-layers",
              "share of re-tokenization neurons (a next-token explanation confirmed by the "
              "neuron's own direct logit effect) among the interpretable neurons of the "
              "deepest SoLU-LN model, last layer minus its other layers (95% Newcombe interval "
              "over neurons, one seed, so at most direction only): direction only if the point "
              "estimate is above 0, not reproduced if the whole interval is at or below 0, "
              "inconclusive otherwise; not testable if either group has no interpretable "
              "neuron"),
    ClaimSpec("middle_abstract", "§6.3.4", "Middle layers hold more abstract neurons "
              "(features that are not a fixed token or token sequence); measured here as "
              "token-class neurons, the nearest the explanation family reaches", "qualitative",
              EMPIRICAL, "06-neurons-across-layers",
              "share of neurons whose explanation is a token class or text pattern (digits, "
              "numbers, capitalized or ALL-CAPS words, punctuation, whitespace, line breaks, a "
              "year, a URL, hexadecimal, base64, indentation) among the interpretable neurons "
              "of the deepest SoLU-LN model, middle layers minus its first and last layers "
              "(95% Newcombe interval over neurons, one seed, so at most direction only): "
              "direction only if the point estimate is above 0, not reproduced if the whole "
              "interval is at or below 0, inconclusive otherwise; not testable below 3 layers "
              "or if either group has no interpretable neuron"),
    # --- §6.4: LayerNorm --------------------------------------------------------------------
    ClaimSpec("ln_low_activation", "§6.4 / Figure 9", "After the extra LN, low-activation "
              "examples are more often inconsistent with the neuron's feature", "much more "
              "(one neuron, ~1000 examples, not blinded)", EMPIRICAL, "07-layernorm",
              "neurons whose explanation holds up on held-out rows (the scorer's interpretable "
              "neurons: chosen on the even rows' top firings, covering at least 80% of the odd "
              "rows' top firings at 3x or more their base rate); every token of the odd rows; "
              "equal-count quantile bands of each hook's positive activations; per neuron, the "
              "inconsistent fraction of the low bands (the weaker half of the firings) after "
              "the LN minus before it; mean over neurons pooled over the 1-layer seeds, 95% BCa "
              "bootstrap over neurons; the same for GELU-LN is the control: reproduced if "
              "SoLU-LN's difference and SoLU-LN minus GELU-LN both have intervals above 0; "
              "direction only if both point estimates are above 0 but an interval includes 0, "
              "or there is no control; not reproduced if SoLU-LN's difference is not above 0 "
              "or not above GELU-LN's and its interval does not reach above 0 (inconclusive "
              "if it does); not testable without a SoLU-LN neuron to compare"),
)
REGISTRY: dict[str, ClaimSpec] = {c.id: c for c in CLAIMS}
if len(REGISTRY) != len(CLAIMS):
    raise RuntimeError("two claims share an id")
CHAPTERS: tuple[str, ...] = tuple(dict.fromkeys(c.chapter for c in CLAIMS))


@dataclass(frozen=True)
class Claim:
    """A scored claim: the registry's statement with our measurement, verdict and sentence."""

    id: str
    section: str
    claim: str
    paper: str
    kind: str
    chapter: str
    rule: str
    ours: str
    verdict: str
    sentence: str
    timed: bool = False
    """True when the verdict rests on wall-clock timing, which a busy machine can flip."""
    values: dict[str, Any] | None = None
    """The measurement's numbers (JSON-safe), for a reader or a test to re-derive the verdict."""

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"claim {self.id}: verdict must be one of {VERDICTS}, "
                             f"got {self.verdict!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Claim":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def scored(claim_id: str, ours: str, verdict: str, sentence: str | None = None, *,
           rule: str | None = None, timed: bool = False,
           values: dict[str, Any] | None = None) -> Claim:
    """Claim ``claim_id`` of the registry with our measurement ``ours`` and its verdict.

    ``sentence`` is what the chapter's text says (glued as ``claim_<id>``, the verdict apart as
    ``verdict_<id>``); by default it is ``ours``. ``rule`` overrides the registry's rule only to fill in numbers the
    registry cannot know (e.g. the stated tolerance).
    """
    if claim_id not in REGISTRY:
        raise KeyError(f"no claim {claim_id!r} in the registry: one of {sorted(REGISTRY)}")
    spec = REGISTRY[claim_id]
    return Claim(id=spec.id, section=spec.section, claim=spec.statement, paper=spec.paper,
                 kind=spec.kind, chapter=spec.chapter, rule=rule or spec.rule, ours=ours,
                 verdict=verdict, sentence=sentence or ours, timed=timed,
                 values=_json_safe(values) if values is not None else None)


def _json_safe(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    if hasattr(x, "item") and callable(x.item):  # numpy scalars
        x = x.item()
    if isinstance(x, float) and x != x:
        return None
    if isinstance(x, float) and x in (float("inf"), float("-inf")):
        return "inf" if x > 0 else "-inf"
    return x


# --- the verdict rules shared by the chapters -------------------------------------------------------
def directional(estimate: float, lo: float, hi: float) -> str:
    """The verdict on a claim that an effect is positive, from its point estimate and
    interval (over seeds; with one seed the interval is infinite): reproduced if the interval
    is above 0; direction only if the estimate is positive but the interval reaches 0;
    not reproduced if the whole interval is at or below 0; inconclusive if the estimate is at
    or below 0 but the interval still reaches above it; not testable without an estimate."""
    if estimate is None or estimate != estimate:
        return NOT_TESTABLE
    if lo > 0:
        return REPRODUCED
    if estimate > 0:
        return PARTLY
    return NOT_REPRODUCED if hi <= 0 else INCONCLUSIVE


def combined(*verdicts: str) -> str:
    """A claim made of several parts that must all hold: the weakest part's verdict."""
    order = (NOT_TESTABLE, NOT_REPRODUCED, INCONCLUSIVE, PARTLY, REPRODUCED)
    return min(verdicts, key=order.index) if verdicts else NOT_TESTABLE


def at_most(verdict: str, cap: str = PARTLY) -> str:
    """``verdict`` capped (e.g. one seed: 'reproduced' needs seeds, so at most 'direction
    only')."""
    return combined(verdict, cap)


# --- the record: what chapter 8 reads ------------------------------------------------------------
class MissingClaims(RuntimeError):
    """A chapter's scored claims are not saved (or were saved for another zoo)."""


def claims_dir(ctx) -> Path:
    return Path(ctx.runs_dir) / ctx.scale / "claims"


def zoo_fingerprint(ctx) -> str:
    """A digest of the zoo's run hashes: claims saved for another zoo are stale."""
    from ..zoo import zoo_configs
    hashes = sorted(f"{n}:{c.run_hash()}" for n, c in zoo_configs(ctx.scale).items())
    return hashlib.sha256("\n".join(hashes).encode()).hexdigest()[:16]


def record(ctx, chapter: str, claims: Sequence[Claim]) -> Path:
    """Save ``chapter``'s scored claims (atomically) for chapter 8; every registry claim of
    the chapter must be among them, and no other."""
    want = {c.id for c in CLAIMS if c.chapter == chapter}
    got = [c.id for c in claims]
    if len(set(got)) != len(got):
        raise ValueError(f"{chapter}: a claim is scored twice: {got}")
    if set(got) != want:
        raise ValueError(f"{chapter} must score exactly its registry claims {sorted(want)}; "
                         f"missing {sorted(want - set(got))}, foreign {sorted(set(got) - want)}")
    path = claims_dir(ctx) / f"{chapter}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"chapter": chapter, "zoo": zoo_fingerprint(ctx), "scale": ctx.scale,
               "claims": [c.to_dict() for c in claims]}
    write_text(path, json.dumps(payload, indent=1, ensure_ascii=False))
    return path


def load(ctx, chapters: Iterable[str] | None = None) -> list[Claim]:
    """Every saved claim, in registry order; ``MissingClaims`` names the notebooks to run."""
    chapters = list(chapters or CHAPTERS)
    fingerprint = zoo_fingerprint(ctx)
    found: dict[str, Claim] = {}
    missing = []
    for chapter in chapters:
        path = claims_dir(ctx) / f"{chapter}.json"
        try:
            payload = json.loads(path.read_text())
        except FileNotFoundError:
            missing.append(f"{chapter} (nothing saved in {path})")
            continue
        except (OSError, ValueError) as exc:
            missing.append(f"{chapter} ({path} is unreadable: {exc})")
            continue
        if payload.get("zoo") != fingerprint:
            missing.append(f"{chapter} (saved for another zoo)")
            continue
        for d in payload["claims"]:
            found[d["id"]] = Claim.from_dict(d)
    if missing:
        raise MissingClaims(
            "the scorecard renders the claims the chapters saved, and these are missing: "
            + "; ".join(missing) + f". Run those notebooks at scale={ctx.scale!r} with the "
            "same runs_dir first (`solu-repro book` runs them all in order)")
    return [found[c.id] for c in CLAIMS if c.id in found]


def glue_claims(claims: Iterable[Claim]) -> None:
    """Glue each claim's sentence (``claim_<id>``) and verdict (``verdict_<id>``) for the text."""
    from myst_nb import glue
    for c in claims:
        glue(f"claim_{c.id}", c.sentence, display=False)
        glue(f"verdict_{c.id}", c.verdict, display=False)
