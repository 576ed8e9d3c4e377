"""Paper §6.3 (what the neurons do), chapters 5 and 6: 1-layer neurons' direct logit effects
against their dataset examples (§6.3.1), and neuron roles across layers (§6.3.2-6.3.4).

Measurements only: pure functions from runs, scores and harvests to results and to
scored claims. No plotting, widgets or HTML here (``solu_repro.book`` presents them:
``book.ch05_neurons`` and ``book.ch06_layers``).

* §6.3.1 (chapter 5): ``measure_one_layer`` takes every seed of the one-layer SoLU-LN model
  and its GELU baseline (``ScoredModel``: weights, corpus, harvest and the judge's verdicts)
  and returns ``OneLayerMeasurements``: per model, ``next_token_agreement`` of the judge's
  interpretable neurons, the same neurons' logit effects against other neurons' examples
  (``mismatched_agreement``: the claim's null) and a seeded random sample of live neurons
  (``random_neurons``, shown beside). Claim ``logit_agreement``: matched minus mismatched,
  one number per seed (``claim.seed_test``).
* §6.3.2-6.3.4 (chapter 6): ``layer_roles_rows`` counts each multi-layer model's
  interpretable neurons per layer and role (``interp.analysis.layer_roles``);
  ``measure_layers`` compares them in the deepest SoLU-LN model and its GELU baseline
  (``RoleShift``: a census of one model, counts without intervals over neurons), checks that
  the deeper models learned from their depth (``depth_check``, from their losses) and
  borrows, where a comparable one exists, a between-seed SD from the one-layer seeds
  (``one_layer_detokenization``). Claims ``early_detokenization``, ``late_retokenization``,
  ``middle_abstract``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch

from ..data import TokenizedCorpus
from ..fmt import num, pct
from ..interp.analysis import layer_roles
from ..interp.explanations import KINDS
from ..interp.harvest import Harvest
from ..interp.ranking import explanation_kind
from ..interp.score import NeuronScore, NeuronScores
from ..model import Transformer
from ..zoo import act_of, depth_of, seed_of
from .claim import EMPIRICAL, INTEREST_POINTS, SEED_RULE, Claim, ClaimSpec, Test, seed_test

Key = tuple[int, int]
"""A neuron: (layer, neuron)."""


@dataclass
class ScoredModel:
    """One model as §6.3 reads it.

    Attributes:
        model: Its weights.
        scores: The scorer's verdict on each neuron (``interp.score``).
        corpus, harvest: The text it was harvested on and its top firings (what the logit
            cross-check of §6.3.1 reads; None where only the roles are counted).
    """

    model: Transformer
    scores: NeuronScores
    corpus: TokenizedCorpus | None = None
    harvest: Harvest | None = None


# --- §6.3.1: does the logit effect agree with the examples? -------------------------------------
def random_neurons(scores: NeuronScores, n: int, seed: int = 0) -> list[NeuronScore]:
    """A seeded uniform sample of ``n`` live neurons, in (layer, neuron) order.

    The same procedure for every model, so two models' samples are comparable (the paper's
    §6.1 evaluation also looks at random neurons); the control of ``logit_agreement``.
    """
    live = [r for r in scores.records if not r.dead]
    if len(live) <= n:
        return live
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(len(live), n, replace=False))
    return [live[i] for i in chosen]


def kind_counts(scores: NeuronScores) -> dict[str, int]:
    """Interpretable neurons per explanation kind, in the family's order (zeros left out)."""
    counts = {k: 0 for k in KINDS}
    for r in scores.records:
        if r.interpretable:
            counts[explanation_kind(r)] += 1
    return {k: v for k, v in counts.items() if v}


AGREEMENT_CHUNK = 256
"""Neurons whose logit effects ``next_token_agreement`` holds at once (chunk x vocab floats)."""


def direct_logit_effects(model, layer: int, neurons: Sequence[int]) -> torch.Tensor:
    """``interp.view.direct_logit_effect`` of several neurons of one layer at once.

    Returns:
        ``(len(neurons), d_vocab)`` float32 tensor on the CPU, row ``i`` the change in the
        next-token logits per unit of neuron ``neurons[i]``'s ``hook_post`` (direct path).
    """
    cfg = model.cfg
    bad = [n for n in neurons if not 0 <= n < cfg.d_mlp]
    if not 0 <= layer < cfg.n_layers or bad:
        raise IndexError(f"neurons {bad} of layer {layer} out of range: the model has "
                         f"{cfg.n_layers} layer(s) of {cfg.d_mlp} neurons")
    with torch.no_grad():
        w_out = model.blocks[layer].mlp.W_out[list(neurons)].float()  # (k, d_model)
        w_out = w_out - w_out.mean(dim=1, keepdim=True)
        effect = (w_out * model.ln_final.w.float()) @ model.W_U.float()  # (k, d_vocab)
    return effect.detach().cpu()


def token_percentiles(effects: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Percentile of token ``tokens[i, j]`` among all tokens ranked by ``effects[i]``.

    ``(tokens below it + half of the others tied with it) / (vocab - 1)``: 1 for the token
    the neuron pushes most, 0 for the one it suppresses most, 0.5 on average for a token
    unrelated to the neuron. Costs a sort of each row (no ``k x m x vocab`` comparison).

    Args:
        effects: ``(k, vocab)`` logit effects.
        tokens: ``(k, m)`` token ids.
    """
    vocab = effects.shape[1]
    x = effects.gather(1, tokens).contiguous()
    ordered = effects.sort(dim=1).values.contiguous()
    below = torch.searchsorted(ordered, x, side="left")
    upto = torch.searchsorted(ordered, x, side="right")
    return (below + (upto - below - 1) / 2).double() / max(vocab - 1, 1)




def following_tokens(corpus, harvest, records: Sequence[NeuronScore],
                     hook: str = "post") -> dict[Key, list[int]]:
    """Per neuron of ``records``, the tokens that actually follow its top firings on ``hook``
    in the harvested split (its dataset examples, read for what comes next). A neuron with
    no firing followed by a token is left out."""
    split = corpus.split(harvest.meta.get("split", "val"))
    out: dict[Key, list[int]] = {}
    seen: set[Key] = set()
    for r in records:
        key = (r.layer, r.neuron)
        if key in seen:
            continue
        seen.add(key)
        positions = [e.position(harvest.n_ctx) + 1
                     for e in harvest.top_examples(r.layer, r.neuron, hook)]
        nxt = [int(split.window(p, 1)[0]) for p in positions if p < split.n_tokens]
        if nxt:
            out[key] = nxt
    return out


def pair_agreement(model, following: Mapping[Key, Sequence[int]],
                   pairs: Sequence[tuple[Key, Key]]) -> list[float]:
    """For each pair ``(neuron, examples_of)``: the mean percentile, in ``neuron``'s direct
    logit effect (``token_percentiles``: 1 = the token it pushes most, 0 = the one it
    suppresses most, 0.5 for a token unrelated to it), of the tokens that follow the top
    firings of ``examples_of`` (``following[examples_of]``).

    ``(i, i)`` is a neuron against its own examples; ``(i, j)`` is neuron i's logit effect
    against neuron j's examples (the mismatched pairing). The logit effects of a layer's
    neurons are computed ``AGREEMENT_CHUNK`` rows at a time."""
    out = [math.nan] * len(pairs)
    for layer in sorted({k[0] for k, _ in pairs}):
        rows = [i for i, (k, _) in enumerate(pairs) if k[0] == layer]
        for start in range(0, len(rows), AGREEMENT_CHUNK):
            chunk = rows[start:start + AGREEMENT_CHUNK]
            lists = [list(following[pairs[i][1]]) for i in chunk]
            width = max(len(t) for t in lists)
            # Pad each row's tokens to a common width; the mask drops the padding.
            tokens = torch.tensor([t + t[:1] * (width - len(t)) for t in lists],
                                  dtype=torch.int64)
            mask = torch.tensor([[j < len(t) for j in range(width)] for t in lists])
            effects = direct_logit_effects(model, layer, [pairs[i][0][1] for i in chunk])
            pct = token_percentiles(effects, tokens)
            means = (pct * mask).sum(dim=1) / mask.sum(dim=1)
            for i, v in zip(chunk, means.tolist()):
                out[i] = float(v)
    return out


def next_token_agreement(model, corpus, harvest, records: Sequence[NeuronScore],
                         hook: str = "post") -> dict[Key, float]:
    """Per neuron, how strongly its direct logit effect promotes the tokens that actually
    follow its strongest firings (paper §6.3.1: check the dataset examples against the logit
    effect): ``pair_agreement`` of each neuron with its own examples (``following_tokens``).

    ``hook_post`` by default: the logit effect is per unit of ``hook_post``, and its top
    firings are where the neuron pushes hardest. A neuron unrelated to what comes next scores
    about 0.5; NaN for a neuron with no firing followed by a token. Exact for one-layer
    models up to the final LayerNorm's scale; for deeper models it is the direct path only.
    """
    following = following_tokens(corpus, harvest, records, hook)
    out = {(r.layer, r.neuron): math.nan for r in records}
    have = [k for k in out if k in following]
    out.update(zip(have, pair_agreement(model, following, [(k, k) for k in have])))
    return out


MISMATCHED_PARTNERS = 16
"""How many other neurons' examples each neuron's logit effect is scored against in the
mismatched-pairing null (a seeded draw without replacement; all the others if fewer)."""


def mismatched_partners(keys: Sequence[Key], n_partners: int = MISMATCHED_PARTNERS,
                        seed: int = 0) -> dict[Key, list[Key]]:
    """For each neuron of ``keys``, ``n_partners`` *other* neurons of ``keys``, drawn
    uniformly without replacement by a generator seeded with ``seed``: the same draw for the
    same neurons and seed. Never the neuron itself; none if it is alone."""
    keys = list(keys)
    rng = np.random.default_rng(seed)
    take = min(n_partners, len(keys) - 1)
    out: dict[Key, list[Key]] = {}
    for i, key in enumerate(keys):
        if take < 1:
            out[key] = []
            continue
        draw = rng.choice(len(keys) - 1, take, replace=False)  # indices into keys without i
        out[key] = [keys[j + (j >= i)] for j in sorted(draw.tolist())]
    return out


def mismatched_agreement(model, following: Mapping[Key, Sequence[int]], keys: Sequence[Key],
                         n_partners: int = MISMATCHED_PARTNERS,
                         seed: int = 0) -> dict[Key, float]:
    """The null of ``next_token_agreement``: per neuron i of ``keys`` (each with its
    ``following`` tokens), the mean over its ``mismatched_partners`` j of ``pair_agreement``
    of (i, j), neuron i's logit effect against neuron j's examples. NaN for a neuron with no
    partner.

    Whatever makes a trained neuron's logit effect agree with *any* neuron's examples (the
    tokens that often come next, what every neuron of the model learned to push) is in the
    null too; only agreement specific to a neuron's own examples lifts its matched score
    above it."""
    keys = [k for k in keys if k in following]
    partners = mismatched_partners(keys, n_partners, seed)
    pairs = [(k, p) for k in keys for p in partners[k]]
    per: dict[Key, list[float]] = {}
    for (k, _), v in zip(pairs, pair_agreement(model, following, pairs)):
        per.setdefault(k, []).append(v)
    return {k: float(np.mean(per[k])) if k in per else math.nan for k in keys}


@dataclass
class Agreement:
    """Summary of an agreement over a group of neurons of one model."""

    model: str
    group: str  # "interpretable" (own examples), "mismatched" (others' examples) or "random"
    n: int
    median: float
    q25: float
    q75: float
    share_above_075: float  # neurons whose next tokens sit in the top quarter of their push
    mean: float = math.nan

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def agreement_summary(model: str, group: str, values: Iterable[float]) -> Agreement:
    """Mean, median, quartiles and share above 0.75 of a group's agreements (NaNs left
    out)."""
    v = np.array([x for x in values if not math.isnan(x)], dtype=float)
    if not len(v):
        return Agreement(model, group, 0, math.nan, math.nan, math.nan, math.nan)
    q25, med, q75 = np.quantile(v, [0.25, 0.5, 0.75])
    return Agreement(model, group, len(v), float(med), float(q25), float(q75),
                     float((v > 0.75).mean()), float(v.mean()))


GROUPS = ("interpretable", "mismatched", "random")
"""The groups of ``logit_agreement``, in the order it returns them."""


def logit_agreement(name: str, m: ScoredModel, n_random: int = 64, seed: int = 0,
                    n_partners: int = MISMATCHED_PARTNERS) -> list[Agreement]:
    """Three ``Agreement`` rows of one model (``GROUPS``):

    * "interpretable": ``next_token_agreement`` of the judge's interpretable neurons, each
      neuron's logit effect against its own examples (matched);
    * "mismatched": the same neurons (those with a matched value), each against the examples
      of ``n_partners`` other interpretable neurons (``mismatched_agreement``, seeded with
      ``seed``): the claim's null;
    * "random": a seeded sample of ``n_random`` live neurons against their own examples
      (``random_neurons``, the same draw for every model; shown beside the claim).
    """
    good = [r for r in m.scores.records if r.interpretable]
    sample = random_neurons(m.scores, n_random, seed)
    values = next_token_agreement(m.model, m.corpus, m.harvest, good + sample)
    matched = [(r.layer, r.neuron) for r in good if not math.isnan(values[(r.layer, r.neuron)])]
    following = following_tokens(m.corpus, m.harvest, good)
    null = mismatched_agreement(m.model, following, matched, n_partners, seed)
    have = [k for k in matched if not math.isnan(null[k])]  # the same neurons in both rows
    return [agreement_summary(name, "interpretable", [values[k] for k in have]),
            agreement_summary(name, "mismatched", [null[k] for k in have]),
            agreement_summary(name, "random", [values[(r.layer, r.neuron)] for r in sample])]


@dataclass
class OneLayerMeasurements:
    """Numbers of chapter 5 (§6.3.1), computed once by ``measure_one_layer``.

    Attributes:
        model: The one-layer model looked at (seed 0), e.g. "1L-solu_ln".
        seeds: Every seed of it, seed 0 first (the claim's interval runs over these).
        baseline: Its GELU baseline (seed 0; shown beside it, not part of the claim).
        n_random: Size of each model's random sample of live neurons.
        interpretable, neurons: Per model (every seed and the baseline), the judge's
            interpretable neurons (top-20 rule) and all neurons.
        kinds: Interpretable neurons of ``model`` per explanation kind.
        agreement: ``logit_agreement`` rows (``GROUPS``) of every seed and of the baseline.
        n_partners: Other neurons each neuron is paired with in the mismatched null.
    """

    model: str
    seeds: list[str]
    baseline: str
    n_random: int
    interpretable: dict[str, int]
    neurons: dict[str, int]
    kinds: dict[str, int]
    agreement: list[Agreement] = field(default_factory=list)
    n_partners: int = MISMATCHED_PARTNERS

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["agreement"] = [a.to_dict() for a in self.agreement]
        return d


def measure_one_layer(models: Mapping[str, ScoredModel], seeds: Sequence[str], baseline: str,
                      n_random: int = 64, seed: int = 0,
                      n_partners: int = MISMATCHED_PARTNERS) -> OneLayerMeasurements:
    """The §6.3.1 numbers: the judge's counts and the logit agreement of every seed of the
    one-layer SoLU-LN model and of its baseline.

    Args:
        models: At least ``seeds`` and ``baseline``, each with its corpus and harvest.
        seeds: Every seed of the model looked at, seed 0 first ("1L-solu_ln", ...).
        baseline: Its GELU baseline ("1L-gelu").
        n_random: Size of each model's random sample of live neurons.
        seed: Seed of the random sample and of the mismatched pairings (the book's seed).
        n_partners: Other neurons each interpretable neuron is paired with in the null.
    """
    names = list(seeds) + [baseline]
    tops = {name: models[name].scores.fraction_interpretable() for name in names}
    agreement = [row for name in names
                 for row in logit_agreement(name, models[name], n_random, seed, n_partners)]
    return OneLayerMeasurements(
        seeds[0], list(seeds), baseline, n_random, {n: p.successes for n, p in tops.items()},
        {n: p.n for n, p in tops.items()}, kind_counts(models[seeds[0]].scores), agreement,
        n_partners)


def seed_differences(agreement: Sequence[Agreement], seeds: Sequence[str],
                     versus: str = "mismatched") -> dict[str, float | None]:
    """Per seed, the mean agreement of its interpretable neurons minus that of ``versus``:
    "mismatched" (the same neurons against other neurons' examples: the claim's effect, the
    mean over neurons of matched minus mismatched) or "random" (the random live neurons).
    None when either group is empty."""
    groups = {(a.model, a.group): a for a in agreement}
    out: dict[str, float | None] = {}
    for s in seeds:
        good, other = groups.get((s, "interpretable")), groups.get((s, versus))
        ok = good is not None and other is not None and good.n > 0 and other.n > 0
        out[s] = good.mean - other.mean if ok else None
    return out


AGREEMENT_INTEREST = INTEREST_POINTS
"""The smallest effect of interest of ``logit_agreement``: 5 percentile points of the
vocabulary (``claim.INTEREST_POINTS``), by which a neuron's own examples' next tokens must
outrank other neurons' in its logit effect before reading one against the other tells a
reader anything."""
MISMATCHED_NULL = ("the same interpretable neurons' logit effects scored against the "
                   "dataset examples of other interpretable neurons of the same model "
                   "(mismatched pairings, a seeded draw)")
RANDOM_NULL = "a seeded random sample of live neurons of the same model, each against its own examples"


LOGIT_AGREEMENT = ClaimSpec(
    "logit_agreement", "§6.3.1", "In 1-layer models the neurons' direct logit "
    "effects corroborate their dataset examples", "qualitative (neuron by neuron)",
    EMPIRICAL, "05-one-layer-neurons",
    "per 1-layer SoLU-LN seed, over the judge's interpretable neurons: the mean "
    "percentile, in a neuron's direct logit effect (W_out·W_U), of the tokens that "
    "follow its own 20 strongest firings (matched), minus the mean percentile, in the "
    "same neuron's logit effect, of the tokens that follow the strongest firings of "
    f"{MISMATCHED_PARTNERS} other interpretable neurons of the same model (mismatched "
    "pairings, a seeded draw: the null); one difference per seed, units = seeds; "
    f"smallest effect of interest {AGREEMENT_INTEREST * 100:.0f} percentile points; not "
    "testable if no seed has two interpretable neurons; the interpretable neurons "
    "against a random sample of live neurons is shown beside, not part of the verdict; "
    + SEED_RULE)


def _per_seed(diffs: Mapping[str, float | None], seeds: Sequence[str]) -> str:
    return ", ".join(f"{s} {num(diffs[s] * 100, '+.1f')}" for s in seeds
                     if diffs[s] is not None)


@LOGIT_AGREEMENT.decided_by
def decide_logit_agreement(m: OneLayerMeasurements) -> Claim:
    """Matched minus mismatched agreement of the interpretable neurons, one number per seed
    of the one-layer SoLU-LN model, decided by ``seed_test``; the same neurons against the
    random live neurons is a second ``seed_test`` kept in ``values`` (shown, not decided)."""
    seeds = m.seeds
    groups = {(a.model, a.group): a for a in m.agreement}
    diffs = seed_differences(m.agreement, seeds, "mismatched")
    versus_random = seed_differences(m.agreement, seeds, "random")
    usable = [s for s in seeds if diffs[s] is not None]
    null = (f"{MISMATCHED_NULL}, {m.n_partners} partners per neuron")
    why = "" if usable else (f"the judge calls fewer than two neurons interpretable in each "
                             f"of the {len(seeds)} seeds: nothing to pair")
    test = seed_test([diffs[s] for s in usable], interest=AGREEMENT_INTEREST, null=null,
                     unit="percentile points", scale=100, why=why)
    control = seed_test([versus_random[s] for s in seeds if versus_random[s] is not None],
                        interest=AGREEMENT_INTEREST,
                        null=f"{RANDOM_NULL} ({m.n_random} per seed)",
                        unit="percentile points", scale=100)
    values: dict[str, Any] = {
        "n_random": m.n_random, "n_partners": m.n_partners,
        "seeds": {s: {g: groups[(s, g)].to_dict() if (s, g) in groups else None
                      for g in GROUPS} | {"difference": diffs[s],
                                          "versus_random": versus_random[s]}
                  for s in seeds},
        "versus_random": control.to_dict()}
    if not usable:
        return LOGIT_AGREEMENT.scored(
            f"fewer than two interpretable neurons in every one of {len(seeds)} seeds",
            sentence=f"Not testable in this build: {why}.", values=values, tests=[test])
    matched = float(np.mean([groups[(s, "interpretable")].mean for s in usable]))
    mismatched = float(np.mean([groups[(s, "mismatched")].mean for s in usable]))
    skipped = [s for s in seeds if diffs[s] is None]
    note = (f" ({', '.join(skipped)} left out: fewer than two interpretable neurons)"
            if skipped else "")
    ours = (f"matched minus mismatched {test.interval_text}; mean percentile "
            f"{matched:.2f} vs {mismatched:.2f}")
    sentence = (
        f"At the strongest firings of the judge's interpretable neurons of the one-layer "
        f"SoLU-LN model, the token that actually comes next sits at a mean percentile of "
        f"{matched:.2f} of the neuron's own direct logit effect, against {mismatched:.2f} "
        f"for the tokens that follow other interpretable neurons' firings, read through the "
        f"same neuron's logit effect (the null: {m.n_partners} mismatched partners per "
        f"neuron; 0.5: unrelated; means over neurons, then over the {len(usable)} "
        f"seed(s)). Matched minus mismatched, one number per seed ({_per_seed(diffs, usable)}"
        f" points): {test.interval_text}; {test.power_text}{note}. Beside it, not part of "
        f"the verdict: the interpretable neurons against {RANDOM_NULL} ({m.n_random} per "
        f"seed), {control.interval_text}.")
    return LOGIT_AGREEMENT.scored(ours, sentence=sentence, values=values, tests=[test])
# --- §6.3.2-6.3.4: roles of neurons by layer ------------------------------------------------------
def multi_layer_models(names: Iterable[str]) -> list[str]:
    """The models of ``names`` with more than one layer, in the order given."""
    return [n for n in names if depth_of(n) > 1]


def deepest_model(names: Iterable[str], act: str = "solu_ln") -> str | None:
    """The deepest model of activation ``act`` with more than one layer among ``names`` (the
    seed-0 zoo models; None: none)."""
    names = [n for n in names if act_of(n) == act and depth_of(n) > 1]
    return max(names, key=depth_of) if names else None


def deepest_pair(names: Iterable[str]) -> tuple[str, str] | None:
    """The deepest multi-layer SoLU-LN model among ``names`` and the GELU model of the same
    depth (None: no such pair)."""
    names = list(names)
    depths = sorted({depth_of(n) for n in names if depth_of(n) > 1}, reverse=True)
    for depth in depths:
        solu, gelu = f"{depth}L-solu_ln", f"{depth}L-gelu"
        if solu in names and gelu in names:
            return solu, gelu
    return None


def layer_position(layer: int, n_layers: int) -> str:
    """"first", "middle" or "last" (a 2-layer model has no middle)."""
    if layer == 0:
        return "first"
    return "last" if layer == n_layers - 1 else "middle"


def layer_roles_rows(models: Mapping[str, ScoredModel]) -> list[dict[str, Any]]:
    """``layer_roles`` of each model (with the logit-effect check of re-tokenization), one
    row per (model, layer), with the model's name, activation, depth and layer position."""
    rows = []
    for name, m in models.items():
        depth = depth_of(name)
        for row in layer_roles(m.scores, m.model):
            rows.append({"model": name, "act": act_of(name), "depth": depth,
                         "position": layer_position(row["layer"], depth), **row})
    return rows




@dataclass
class RoleShift:
    """A role's share in one group of neurons against another, in one trained model.

    ``count / n`` of the group (``layers`` of a model) against ``other_count / other_n`` of
    ``versus``; ``of`` says what ``n`` counts ("interpretable neurons" for a comparison within
    a model, "neurons" for one between models of the same size). Every neuron is scored, so
    these are a census, reported as counts and shares with no interval over neurons: the
    uncertainty that matters is between trained models, which one model does not show.
    """

    role: str
    layers: str  # "first", "last" or "middle"
    count: int
    n: int
    other_count: int
    other_n: int
    versus: str = "the other layers"
    of: str = "interpretable neurons"

    @property
    def share(self) -> float:
        return self.count / self.n if self.n else math.nan

    @property
    def other_share(self) -> float:
        return self.other_count / self.other_n if self.other_n else math.nan

    @property
    def diff(self) -> float:
        """The share minus the other share (NaN when either group is empty)."""
        return self.share - self.other_share if self.measurable else math.nan

    @property
    def measurable(self) -> bool:
        return self.n > 0 and self.other_n > 0

    @property
    def direction_agrees(self) -> bool | None:
        """The share is higher where the paper says (None when not measurable)."""
        return None if math.isnan(self.diff) else self.diff > 0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "share": self.share, "other_share": self.other_share,
                "diff": self.diff, "direction_agrees": self.direction_agrees}


def role_shift(rows: Sequence[dict[str, Any]], role: str, layers: str) -> RoleShift:
    """``RoleShift`` of ``role`` among the interpretable neurons of the layers at position
    ``layers`` vs the rest of a model's layers (``rows``: one model's ``layer_roles_rows``)."""
    inside = [r for r in rows if r["position"] == layers]
    outside = [r for r in rows if r["position"] != layers]
    c, n = sum(r[role] for r in inside), sum(r["n_interpretable"] for r in inside)
    oc, on = sum(r[role] for r in outside), sum(r["n_interpretable"] for r in outside)
    versus = {"first": "the later layers", "last": "the earlier layers",
              "middle": "the first and last layers"}[layers]
    return RoleShift(role, layers, c, n, oc, on, versus=versus)


def first_layer_comparison(rows: Sequence[dict[str, Any]], other_rows: Sequence[dict[str, Any]],
                           role: str = "detokenization") -> RoleShift:
    """``role``'s share of *all* first-layer neurons (dead ones included) of one model against
    another's (``layer_roles_rows`` of each): does the first model's first layer hold more
    neurons of that role? The two models have layers of the same size, so this compares
    counts; a share among interpretable neurons would hide a model that simply has more of
    them."""
    first = next(r for r in rows if r["layer"] == 0)
    other = next(r for r in other_rows if r["layer"] == 0)
    return RoleShift(role, "first", first[role], first["n_neurons"], other[role],
                     other["n_neurons"],
                     versus=f"{other.get('model', 'the baseline')}'s first layer", of="neurons")


# --- did the deeper models learn anything from their depth? ---------------------------------------
@dataclass
class DepthCheck:
    """A model's validation loss against the next shallower model of the same activation
    (seed 0 of each): a deeper model that is not better has not learned to use its layers,
    and the roles of its layers mean little."""

    model: str
    loss: float
    shallower: str | None
    shallower_loss: float

    @property
    def learned(self) -> bool | None:
        """The loss is below the shallower model's (None: a loss or the model is missing)."""
        if self.shallower is None or not (math.isfinite(self.loss)
                                          and math.isfinite(self.shallower_loss)):
            return None
        return self.loss < self.shallower_loss

    @property
    def text(self) -> str:
        if self.learned is None:
            return (f"no loss to compare {self.model} with a shallower model of its "
                    "activation")
        side = "below" if self.learned else "not below"
        return (f"{self.model}'s validation loss {self.loss:.3f} nats is {side} "
                f"{self.shallower}'s {self.shallower_loss:.3f}")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "learned": self.learned, "text": self.text}


def depth_check(name: str, losses: Mapping[str, float]) -> DepthCheck:
    """``DepthCheck`` of model ``name`` against the deepest model of the same activation that
    is shallower than it among ``losses`` (seed-0 names -> final validation loss)."""
    nan = math.nan
    loss = losses.get(name)
    shallower = [n for n in losses if seed_of(n) == 0 and act_of(n) == act_of(name)
                 and depth_of(n) < depth_of(name)]
    other = max(shallower, key=depth_of) if shallower else None
    return DepthCheck(name, float(loss) if loss is not None else nan, other,
                      float(losses[other]) if other is not None and losses[other] is not None
                      else nan)


def depth_failures(checks: Sequence[DepthCheck]) -> str:
    """The checks that show depth was not learned, as one phrase ("" if none)."""
    bad = [c.text for c in checks if c.learned is False]
    return ("depth was not learned: " + "; ".join(bad)) if bad else ""


# --- a between-seed SD to borrow ------------------------------------------------------------------
def one_layer_detokenization(rows: Sequence[dict[str, Any]]) -> dict[int, float]:
    """Per seed, the de-tokenization share of all neurons of the one-layer SoLU-LN model
    minus that of the one-layer GELU model of the same seed (``rows``: their
    ``layer_roles_rows``). The same measurement as ``early_detokenization``'s, on the first
    (and only) layer of models the zoo trains several seeds of: its spread between seeds is
    the SD that row borrows."""
    share = {(act_of(r["model"]), seed_of(r["model"])): r["detokenization"] / r["n_neurons"]
             for r in rows if r["depth"] == 1 and r["layer"] == 0 and r["n_neurons"]}
    seeds = sorted({s for a, s in share if a == "solu_ln"} & {s for a, s in share
                                                              if a == "gelu"})
    return {s: share[("solu_ln", s)] - share[("gelu", s)] for s in seeds}


def borrowed_sd(per_seed: Mapping[int, float], what: str) -> tuple[float, int, str] | None:
    """``(sd, df, source)`` of per-seed values, to lend a single-model row; None with fewer
    than two seeds or no spread."""
    t = seed_test(list(per_seed.values()), interest=1.0, null="")
    if not (t.n >= 2 and math.isfinite(t.sd) and t.sd > 0):
        return None
    return t.sd, t.df, f"{what} over {t.n} seed pairs (SD {t.sd * 100:.2f} points, df {t.df})"


@dataclass
class LayersMeasurements:
    """Numbers of chapter 6 (§6.3.2-6.3.4), computed once by ``measure_layers``.

    Attributes:
        solu, gelu: The deepest multi-layer SoLU-LN model and its GELU baseline of the same
            depth (None: no multi-layer pair). One seed each.
        roles: ``layer_roles_rows`` of both.
        early_detokenization: De-tokenization share of all first-layer neurons, SoLU-LN vs
            GELU (§6.3.2: SoLU helps early layers compared with the baseline).
        late_retokenization: Re-tokenization share of the SoLU-LN model's interpretable
            neurons, last layer vs the others (§6.3.3).
        middle_token_class: Token-class share of its interpretable neurons, middle layers vs
            first and last (§6.3.4 as far as the explanation family reaches; None below 3
            layers).
        depth: ``depth_check`` of the pair's two models (empty without losses).
        one_layer: ``layer_roles_rows`` of the one-layer SoLU-LN and GELU seeds.
        detokenization_seeds: ``one_layer_detokenization`` of them.
    """

    solu: str | None
    gelu: str | None
    roles: list[dict[str, Any]] = field(default_factory=list)
    early_detokenization: RoleShift | None = None
    late_retokenization: RoleShift | None = None
    middle_token_class: RoleShift | None = None
    depth: list[DepthCheck] = field(default_factory=list)
    one_layer: list[dict[str, Any]] = field(default_factory=list)
    detokenization_seeds: dict[int, float] = field(default_factory=dict)

    def model_rows(self, name: str | None) -> list[dict[str, Any]]:
        return [r for r in self.roles if r["model"] == name]

    def depth_of_model(self, name: str | None) -> list[DepthCheck]:
        return [c for c in self.depth if c.model == name]

    @property
    def n_layers(self) -> int:
        return depth_of(self.solu) if self.solu else 0

    def to_dict(self) -> dict[str, Any]:
        d = {"solu": self.solu, "gelu": self.gelu, "roles": self.roles,
             "depth": [c.to_dict() for c in self.depth], "one_layer": self.one_layer,
             "detokenization_seeds": self.detokenization_seeds}
        for k in ("early_detokenization", "late_retokenization", "middle_token_class"):
            v = getattr(self, k)
            d[k] = v.to_dict() if v is not None else None
        return d


def measure_layers(rows: Sequence[dict[str, Any]], pair: tuple[str, str] | None = None, *,
                   losses: Mapping[str, float] | None = None,
                   one_layer: Sequence[dict[str, Any]] = ()) -> LayersMeasurements:
    """The §6.3.2-6.3.4 comparisons of a SoLU-LN model and its GELU baseline.

    Args:
        rows: ``layer_roles_rows`` of (at least) both models.
        pair: (SoLU-LN model, GELU model of the same depth); by default the deepest pair
            among the models of ``rows`` (``deepest_pair``).
        losses: Final validation loss of the seed-0 models (for ``depth_check``; None: not
            checked).
        one_layer: ``layer_roles_rows`` of the one-layer SoLU-LN and GELU seeds (for the SD
            ``early_detokenization`` borrows; empty: none to borrow).
    """
    names = list(dict.fromkeys(r["model"] for r in rows))
    pair = pair if pair is not None else deepest_pair(names)
    one_layer = [dict(r) for r in one_layer]
    if pair is None:
        return LayersMeasurements(None, None, one_layer=one_layer,
                                  detokenization_seeds=one_layer_detokenization(one_layer))
    missing = [n for n in pair if n not in names]
    if missing:
        raise ValueError(f"measure_layers: no layer_roles_rows of {missing}; the rows are of "
                         f"{names}")
    solu, gelu = pair
    m = LayersMeasurements(solu, gelu, [dict(r) for r in rows if r["model"] in pair],
                           one_layer=one_layer,
                           detokenization_seeds=one_layer_detokenization(one_layer))
    solu_rows = m.model_rows(solu)
    m.early_detokenization = first_layer_comparison(solu_rows, m.model_rows(gelu))
    m.late_retokenization = role_shift(solu_rows, "retokenization", "last")
    if depth_of(solu) >= 3:
        m.middle_token_class = role_shift(solu_rows, "token_class", "middle")
    if losses:
        m.depth = [depth_check(n, losses) for n in pair]
    return m


ROLE_SHARE_INTEREST = INTEREST_POINTS
"""The smallest effect of interest of a role's share (``claim.INTEREST_POINTS``): 5 points of
a layer's neurons, a difference a reader would notice in the roles-by-layer figure; the paper
describes differences between near-none and many."""
NO_SD = ("one trained model, and no comparable between-seed SD to borrow (a one-layer model "
         "has no {what} contrast, and the zoo trains one seed of each multi-layer model)")


NO_BORROWED = ("one trained model of each, and the one-layer SoLU-LN and GELU seeds give no "
               "between-seed SD of this difference to borrow (fewer than two seed pairs, or "
               "no spread)")


def shift_test(shift: RoleShift | None, null: str, *, borrowed=None, why: str = "") -> Test:
    """The ``Test`` of a single-model ``RoleShift``: its difference as the one unit, with the
    SD ``borrowed`` (``borrowed_sd``) if any; not testable (``why``) without one or when a
    group is empty."""
    if shift is None or not shift.measurable:
        return seed_test([], interest=ROLE_SHARE_INTEREST, null=null, unit="points",
                         scale=100, why=why or "a group has no neuron to count")
    return seed_test([shift.diff], interest=ROLE_SHARE_INTEREST, null=null, unit="points",
                     scale=100, borrowed=borrowed, why=why)


def _census(shift: RoleShift) -> str:
    return (f"{shift.count}/{shift.n} = {pct(shift.share)} against {shift.other_count}/"
            f"{shift.other_n} = {pct(shift.other_share)} in {shift.versus}, "
            f"{pct(shift.diff, signed=True).rstrip('%')} points (a census of one model)")


def _reasons(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


def _depth_sentence(checks: Sequence[DepthCheck]) -> str:
    if not checks:
        return " The losses of the models were not given, so depth was not checked."
    failed = depth_failures(checks)
    if failed:
        return f" Besides, {failed}: the roles of such a model's layers mean little."
    return " " + "; ".join(c.text for c in checks) + ": the extra layers lowered the loss."


EARLY_DETOKENIZATION = ClaimSpec(
    "early_detokenization", "§6.3.2", "SoLU helps early-layer neurons: the first "
    "layer holds more de-tokenization neurons than the baseline's", "qualitative",
    EMPIRICAL, "06-neurons-across-layers",
    "share of the first layer's neurons (all of them) that the judge calls "
    "interpretable with a de-tokenization explanation (previous token or bigram), "
    "SoLU-LN minus GELU of the same depth (the deepest pair, one trained model each: a "
    "census, counts with no interval over neurons); the one unit's SD is borrowed from "
    "the same difference on the one-layer SoLU-LN and GELU seeds (the zoo's only depth "
    "with seeds; the chapter says so) when they give one, else not testable; not "
    "testable when either model of the pair has a validation loss not below the next "
    "shallower model of its activation (depth not learned), or when neither first "
    f"layer has an interpretable neuron; smallest effect of interest "
    f"{ROLE_SHARE_INTEREST * 100:.0f} points; " + SEED_RULE)


@EARLY_DETOKENIZATION.decided_by
def decide_early_detokenization(m: LayersMeasurements) -> Claim:
    """The SoLU-LN model's first layer holds more de-tokenization neurons than the GELU
    model's of the same depth: ``shift_test`` of ``m.early_detokenization`` with the SD of
    ``one_layer_detokenization`` borrowed, gated on ``depth_check``."""
    shift = m.early_detokenization
    null = "the GELU model's first layer, same depth (one model each)"
    per_seed = m.detokenization_seeds
    borrowed = borrowed_sd(per_seed, "the one-layer SoLU-LN minus GELU de-tokenization share")
    values = {"solu": m.solu, "gelu": m.gelu,
              "shift": shift.to_dict() if shift is not None else None,
              "depth": [c.to_dict() for c in m.depth],
              "one_layer_seeds": {str(k): v for k, v in per_seed.items()},
              "borrowed": list(borrowed) if borrowed else None}
    if shift is None:
        why = "the zoo has no multi-layer SoLU-LN model with a GELU model of the same depth"
        return EARLY_DETOKENIZATION.scored(
            "no multi-layer SoLU-LN/GELU pair", sentence=f"Not testable: {why}.",
            values=values, tests=[shift_test(None, null, why=why)])
    firsts = [r for r in m.roles if r["layer"] == 0]
    interpretable = {r["model"]: r["n_interpretable"] for r in firsts}
    values["first_layer_interpretable"] = interpretable
    if not any(interpretable.values()):
        why = (f"the judge calls no first-layer neuron of {m.solu} or {m.gelu} "
               "interpretable, so neither can show de-tokenization neurons")
        return EARLY_DETOKENIZATION.scored(
            f"no interpretable first-layer neuron in {m.solu} or {m.gelu}",
            sentence=f"Not testable in this build: {why}.", values=values,
            tests=[shift_test(shift, null, why=why)])
    why = _reasons(depth_failures(m.depth), "" if borrowed else NO_BORROWED)
    test = shift_test(shift, null, borrowed=borrowed, why=why)
    seeds_text = ", ".join(f"{num(v * 100, '+.1f')}" for v in per_seed.values())
    source = (f"its SD borrowed from the same difference on the one-layer seeds, "
              f"{seeds_text} points, assuming a first layer's spread between seeds does not "
              "grow with the layers above it" if borrowed else "no SD to borrow")
    ours = f"{m.solu} minus {m.gelu}, first layer: {_census(shift)}; {test.interval_text}"
    if why:
        ours += "; not testable: " + ("depth was not learned" if depth_failures(m.depth)
                                      else "no SD to borrow")
    sentence = (
        f"De-tokenization neurons (an interpretable previous-token or bigram explanation) "
        f"make up {shift.count}/{shift.n} = {pct(shift.share)} of the first-layer neurons "
        f"of {m.solu}, against {shift.other_count}/{shift.other_n} = "
        f"{pct(shift.other_share)} of those of {m.gelu}, the GELU model of the same depth: "
        f"a census of one trained model each, so no interval over neurons. As a test with "
        f"one unit ({source}): {test.interval_text}; {test.power_text}."
        + (f" Not testable: {why}." if why else "")
        + ("" if depth_failures(m.depth) else _depth_sentence(m.depth)))
    return EARLY_DETOKENIZATION.scored(ours, sentence=sentence, values=values, tests=[test])


LATE_RETOKENIZATION = ClaimSpec(
    "late_retokenization", "§6.3.3", "Late layers hold re-tokenization neurons",
    "qualitative", EMPIRICAL, "06-neurons-across-layers",
    "share of re-tokenization neurons (a next-token explanation confirmed by the "
    "neuron's own direct logit effect) among the interpretable neurons of the "
    "deepest SoLU-LN model, last layer minus its other layers: a census of one trained "
    "model, shown as counts and shares; not testable: a one-layer model has no "
    "last-versus-earlier contrast, so there is no comparable between-seed SD to borrow, "
    "and the zoo trains one seed of each multi-layer model (the row also says when the "
    "model's loss shows depth was not learned)")


def _within_model_claim(spec: ClaimSpec, m: LayersMeasurements, shift: RoleShift | None,
                        what: str, contrast: str, describe: str) -> Claim:
    """A within-model layer contrast of the SoLU-LN model: the census, and a test that is
    not testable (``NO_SD``), with the depth check in the text."""
    null = f"the same model's {shift.versus if shift else 'other layers'} (one model)"
    checks = m.depth_of_model(m.solu)
    values = {"model": m.solu, "role": shift.role if shift else None,
              "shift": shift.to_dict() if shift is not None else None,
              "depth": [c.to_dict() for c in checks]}
    if shift is None:
        why = ("the zoo has no multi-layer SoLU-LN model" if m.solu is None else
               f"{m.solu} has {m.n_layers} layers, so no {what}")
        return spec.scored(f"no {what} ({why})", sentence=f"Not testable: {why}.",
                           values=values, tests=[shift_test(None, null, why=why)])
    if not shift.measurable:
        why = (f"the judge finds {shift.n} interpretable neurons in the {what} of {m.solu} "
               f"and {shift.other_n} in {shift.versus}, and a share needs some in both")
        return spec.scored(f"{m.solu}: {shift.n} interpretable neurons in the {what}, "
                           f"{shift.other_n} in {shift.versus}",
                           sentence=f"Not testable in this build: {why}.", values=values,
                           tests=[shift_test(shift, null, why=why)])
    why = _reasons(NO_SD.format(what=contrast), depth_failures(checks))
    test = shift_test(shift, null, why=why)
    ours = f"{m.solu}, {what}: {_census(shift)}; not testable: one model, no SD to borrow"
    sentence = (
        f"{describe} are {shift.count}/{shift.n} = {pct(shift.share)} of the interpretable "
        f"neurons in the {what} of {m.solu}, against {shift.other_count}/{shift.other_n} = "
        f"{pct(shift.other_share)} in {shift.versus}, "
        f"{pct(shift.diff, signed=True).rstrip('%')} points: a census of one trained "
        f"model, with no interval over neurons. Not testable: {NO_SD.format(what=contrast)}."
        + _depth_sentence(checks))
    return spec.scored(ours, sentence=sentence, values=values, tests=[test])


@LATE_RETOKENIZATION.decided_by
def decide_late_retokenization(m: LayersMeasurements) -> Claim:
    """The last layer of the SoLU-LN model against its other layers
    (``m.late_retokenization``): the census, not testable (``_within_model_claim``)."""
    return _within_model_claim(
        LATE_RETOKENIZATION, m, m.late_retokenization, "last layer", "last-versus-earlier",
        "Re-tokenization neurons (a next-token explanation that the neuron's own direct "
        "logit effect confirms)")


MIDDLE_ABSTRACT = ClaimSpec(
    "middle_abstract", "§6.3.4", "Middle layers hold more abstract neurons "
    "(features that are not a fixed token or token sequence); measured here as "
    "token-class neurons, the nearest the explanation family reaches", "qualitative",
    EMPIRICAL, "06-neurons-across-layers",
    "share of neurons whose explanation is a token class or text pattern (digits, "
    "numbers, capitalized or ALL-CAPS words, punctuation, whitespace, line breaks, a "
    "year, a URL, hexadecimal, base64, indentation) among the interpretable neurons "
    "of the deepest SoLU-LN model, middle layers minus its first and last layers: a "
    "census of one trained model, shown as counts and shares; not testable: a one-layer "
    "model has no middle layer, so there is no comparable between-seed SD to borrow, and "
    "the zoo trains one seed of each multi-layer model; none below 3 layers (the row also "
    "says when the model's loss shows depth was not learned)")


@MIDDLE_ABSTRACT.decided_by
def decide_middle_abstract(m: LayersMeasurements) -> Claim:
    """The middle layers of the SoLU-LN model against its first and last
    (``m.middle_token_class``): the census, not testable (``_within_model_claim``). What is
    measured is the token-class role, the nearest the explanation family comes to the
    paper's abstract features."""
    shift = m.middle_token_class
    middle = ", ".join(f"L{r['layer']}" for r in m.model_rows(m.solu)
                       if r["position"] == "middle")
    claim = _within_model_claim(
        MIDDLE_ABSTRACT, m, shift, f"middle layers ({middle})" if middle else "middle layer",
        "middle-versus-outer",
        "Token-class neurons (an interpretable explanation that is a class of tokens or a "
        "text pattern: digits, numbers, capitalized words, punctuation, a year, "
        "indentation, ...)")
    if shift is None or not shift.measurable:
        return claim
    return replace(claim, sentence=claim.sentence + (
        " This measures token classes, not the paper's abstract features (numbers of "
        "people, clauses about music), which the explanation family cannot express."))


CLAIMS: tuple[ClaimSpec, ...] = (LOGIT_AGREEMENT, EARLY_DETOKENIZATION, LATE_RETOKENIZATION,
                                 MIDDLE_ABSTRACT)
