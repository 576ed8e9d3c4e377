"""Figure 4 over training (paper §6.2, measured at several points of each run).

The paper measures finished models. A reproduction on a CPU budget measures models early in
training, so the book also asks whether the SoLU-LN minus GELU difference grows, shrinks or
flips as the models learn. Every 1-layer model of the Figure 4 pair keeps its weights at
log-spaced steps (``zoo.Scale.snapshot_steps``); at each step and for each seed this module
measures:

- validation loss (nats/token, the whole validation split);
- the rotation-fair judge score (``interp.basis_score``: features exposed, mean best r²) of the
  neuron basis and of a random rotation of it;
- sparse probing (``interp.probing``): the best single neuron's F1 per ground-truth label, and
  the best single rotated direction's;
- the top-20 view (the paper's rule): the fraction of neurons interpretable, and of rotated
  directions.

Each interpretability metric is read against its rotated null, then SoLU-LN minus GELU per
matched seed (same init and data order). ``trend`` fits each seed's difference against
log10(tokens) and extrapolates to the released models' 22 B tokens: an extrapolation over
more than three decades, shown as what the trend predicts, never as a result.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import numpy as np

from ..interp.controls import score_control
from ..interp.instruments import basis_score_run, probe_run
from ..interp.score import ScoreSettings, score_run
from ..interp.stats import seed_mean_interval
from ..zoo import act_of, seed_of

RELEASED_TOKENS = 22e9
"""Training tokens of the released TransformerLens SoLU/GELU toy models (1-4 layers), the
closest public models to the paper's: where the book extrapolates the trend to."""

PAIR = ("solu_ln", "gelu")
"""The Figure 4 pair: the paper's model first, its baseline second."""


@dataclass(frozen=True)
class Metric:
    """One quantity tracked over training: its label, unit, and the paper's value if it gives
    one (in the same unit, for SoLU-LN minus GELU)."""

    key: str
    label: str
    unit: str
    paper: float | None = None
    paper_note: str = ""
    short: str = ""


METRICS: dict[str, Metric] = {m.key: m for m in (
    Metric("val_loss", "validation loss", "nats", 0.0,
           "§5: no loss penalty (within about 0.01 nats)", "validation loss"),
    Metric("fair", "rotation-fair judge score, neuron basis minus rotated",
           "points of r² x 100", short="rotation-fair score, net of rotation"),
    Metric("probe", "privileged-basis gap (best neuron's F1 minus best rotated direction's, "
           "mean over labels)", "points of F1 x 100", short="probing gap over rotation"),
    Metric("top20", "top-20 view, fraction of neurons interpretable", "points", 25.0,
           "Figure 4: ~35% to ~60% at 1-40 layers (blinded humans)", "top-20 view"),
)}
"""What the book draws over training. ``top20`` is the neuron basis's raw fraction (the
paper's quantity; its rotated null is drawn beside it), the others are net of the rotation."""


@dataclass(frozen=True)
class Point:
    """One model at one step of its training: every metric, and each one's rotated null."""

    name: str
    act: str
    seed: int
    step: int
    tokens: int
    val_loss: float
    fair: float            # features exposed (mean best r²), neuron basis
    fair_rotated: float    # the same, rotated basis
    probe: float           # mean over labels of the best single neuron's held-out F1
    probe_rotated: float   # the same, best single rotated direction
    top20: float           # fraction of neurons interpretable, top-20 view
    top20_rotated: float   # the same, rotated directions

    def value(self, metric: str) -> float:
        """The metric in its unit (``METRICS``): net of the rotation except ``val_loss`` and
        ``top20``."""
        if metric == "val_loss":
            return self.val_loss
        if metric == "fair":
            return 100 * (self.fair - self.fair_rotated)
        if metric == "probe":
            return 100 * (self.probe - self.probe_rotated)
        if metric == "top20":
            return 100 * self.top20
        if metric == "top20_rotated":
            return 100 * self.top20_rotated
        raise KeyError(f"unknown metric {metric!r}: one of {sorted(METRICS)}")


SNAPSHOT_JUDGE = ScoreSettings(spectrum=False)
"""The judge at a kept step: the chapter's judge without the full-spectrum view, which no
metric over training reads (the top-20 view and the explanations are the same)."""


def measure_point(run, seed: int = 0, progress: bool = False, data_dir=None) -> Point:
    """Every metric of one zoo run at the step its weights come from (``ZooRun.at``), each
    cached beside the run and keyed by that step's weights file.

    The finished run (``run.step is None``) reads the chapter's own results; a kept step runs
    only what the metrics need (``SNAPSHOT_JUDGE``; probes of each label's best single neuron,
    without the k-sparse and full probes), which gives the same numbers at about half the
    cost."""
    final = run.step is None
    judge = ScoreSettings() if final else SNAPSHOT_JUDGE
    probes = {} if final else {"ks": (), "full": False}
    probe = probe_run(run, None, seed=seed, progress=progress, data_dir=data_dir, **probes)
    probe_rot = probe_run(run, "rotated", seed=seed, progress=progress, data_dir=data_dir,
                          **probes)
    common = set(probe.best_f1()) & set(probe_rot.best_f1())
    top = score_run(run, judge, seed=seed, progress=progress, data_dir=data_dir)
    top_rot = score_control(run, "rotated", judge, seed=seed, progress=progress,
                            data_dir=data_dir)
    fair = basis_score_run(run, None, seed=seed, settings=judge, progress=progress,
                           data_dir=data_dir)
    fair_rot = basis_score_run(run, "rotated", seed=seed, settings=judge, progress=progress,
                               data_dir=data_dir)
    return Point(
        name=run.name, act=act_of(run.name), seed=seed_of(run.name),
        step=int(run.result["step"]), tokens=int(run.result["tokens"]),
        val_loss=float(run.result["val_loss"]),
        fair=float(fair.features_exposed), fair_rotated=float(fair_rot.features_exposed),
        probe=float(np.mean([probe.best_f1()[k] for k in sorted(common)])),
        probe_rotated=float(np.mean([probe_rot.best_f1()[k] for k in sorted(common)])),
        top20=top.fraction_interpretable(view="top").fraction,
        top20_rotated=top_rot.fraction_interpretable(view="top").fraction)


def measure_run(run, seed: int = 0, progress: bool = False, data_dir=None) -> list[Point]:
    """``measure_point`` at every step the run kept (``ZooRun.steps``), in order."""
    return [measure_point(run.at(step), seed, progress, data_dir) for step in run.steps]


def pair_names(names: Iterable[str], depth: int = 1) -> list[str]:
    """The zoo names of every seed of the 1-layer Figure 4 pair among ``names``."""
    return [n for n in names if n.startswith(f"{depth}L-") and act_of(n) in PAIR]


def _seed_interval(values, confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean over seeds and its t interval (``interp.stats.seed_mean_interval``), with NaN
    where the seeds give none (one seed, or seeds that do not differ at all)."""
    si = seed_mean_interval(values, confidence)
    if math.isinf(si.lo):
        return si.estimate, math.nan, math.nan
    return si.estimate, si.lo, si.hi


@dataclass(frozen=True)
class Trajectory:
    """One metric over training: per seed, the tokens and SoLU-LN minus GELU at each step the
    two models of the seed share; and each model's own values."""

    metric: str
    tokens: tuple[int, ...]
    differences: dict[int, tuple[float, ...]]   # seed -> SoLU-LN minus GELU per step
    values: dict[str, dict[int, tuple[float, ...]]]  # act -> seed -> value per step

    @property
    def seeds(self) -> list[int]:
        return sorted(self.differences)

    def mean(self) -> np.ndarray:
        """The mean difference over seeds at each step."""
        return np.mean([self.differences[s] for s in self.seeds], axis=0)

    def interval(self, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
        """A t interval of the mean difference over seeds at each step (NaN below 2 seeds, or
        where the seeds agree exactly)."""
        d = np.asarray([self.differences[s] for s in self.seeds], dtype=float)
        bounds = [_seed_interval(col, confidence)[1:] for col in d.T]
        return np.array([lo for lo, _ in bounds]), np.array([hi for _, hi in bounds])


def trajectory(points: Sequence[Point], metric: str) -> Trajectory:
    """``metric`` (a key of ``METRICS``, or ``"top20_rotated"``) over training, SoLU-LN minus
    GELU per matched seed, at the steps both models of every seed were measured."""
    by = {(p.act, p.seed, p.step): p for p in points}
    seeds = sorted({p.seed for p in points if all((a, p.seed, p.step) in by for a in PAIR)})
    steps = sorted({p.step for p in points})
    steps = [k for k in steps if all((a, s, k) in by for a in PAIR for s in seeds)]
    if not seeds or not steps:
        raise ValueError("no seed has both models of the pair measured at a common step")
    tokens = tuple(by[(PAIR[0], seeds[0], k)].tokens for k in steps)
    values = {a: {s: tuple(by[(a, s, k)].value(metric) for k in steps) for s in seeds}
              for a in PAIR}
    diffs = {s: tuple(x - y for x, y in zip(values[PAIR[0]][s], values[PAIR[1]][s]))
             for s in seeds}
    return Trajectory(metric, tokens, diffs, values)


@dataclass(frozen=True)
class Trend:
    """Each seed's difference fitted against log10(tokens), and the fit carried to
    ``at_tokens``: slope per decade and the extrapolated difference, each as a mean over seeds
    with a 95% t interval (seeds are the replicates; a fit's own residuals are not)."""

    metric: str
    slopes: dict[int, float]
    slope: float
    slope_lo: float
    slope_hi: float
    at_tokens: float
    predicted: float
    predicted_lo: float
    predicted_hi: float
    decades: float   # how far past the last measured point the extrapolation reaches
    last: float      # the mean difference at the last measured point
    first_tokens: float = math.nan  # the first point of the fit

    @property
    def direction(self) -> str:
        """"grows", "shrinks" or "no clear trend", from the slope's interval: a growing
        difference moves away from 0 on the side the last measured mean difference is on."""
        if not (self.slope_lo > 0 or self.slope_hi < 0):
            return "no clear trend"
        return "grows" if (self.slope > 0) == (self.last > 0) else "shrinks"


def trend(traj: Trajectory, at_tokens: float = RELEASED_TOKENS, last: int | None = None
          ) -> Trend:
    """Fit ``traj``'s differences, seed by seed, as a line in log10(tokens) (over the ``last``
    steps only, or all of them), and extrapolate to ``at_tokens``. Needs 2 or more steps;
    intervals need 2 or more seeds (else NaN)."""
    keep = slice(-last, None) if last else slice(None)
    x = np.log10(np.asarray(traj.tokens, dtype=float))[keep]
    if len(x) < 2:
        raise ValueError("a trend needs the metric at 2 or more steps")
    fits = {s: np.polyfit(x, np.asarray(traj.differences[s], dtype=float)[keep], 1)
            for s in traj.seeds}
    slopes = np.array([fits[s][0] for s in traj.seeds])
    at = math.log10(at_tokens)
    preds = np.array([fits[s][0] * at + fits[s][1] for s in traj.seeds])

    s, s_lo, s_hi = _seed_interval(slopes)
    p, p_lo, p_hi = _seed_interval(preds)
    return Trend(traj.metric, {k: float(fits[k][0]) for k in traj.seeds}, s, s_lo, s_hi,
                 float(at_tokens), p, p_lo, p_hi, float(at - x.max()),
                 float(traj.mean()[keep][int(np.argmax(x))]), float(10 ** x.min()))


LATE_POINTS = 3
"""The late trend is fitted on the last 3 points (from the old 1.43 M-token budget on, at the
cpu scale): a difference that rises early and falls late has a positive slope over all points
that says nothing about where it is heading."""


def direction(whole: Trend, late: Trend | None) -> str:
    """One word for both fits: the shared direction when the slope over all points and the
    late slope agree (or there is no late fit), otherwise what the two say."""
    if late is None or late.direction == whole.direction:
        return whole.direction
    return f"{whole.direction} over all points, {late.direction} late"


@dataclass(frozen=True)
class TrainingMeasurements:
    """Every point of the pair over training, and each metric's trajectory and its trends over
    all points (``trends``) and over the last ``LATE_POINTS`` (``late_trends``, where there are
    more points than that)."""

    points: tuple[Point, ...]
    trajectories: dict[str, Trajectory]
    trends: dict[str, Trend]
    rotated_top20: Trajectory
    late_trends: dict[str, Trend] = field(default_factory=dict)

    def direction(self, metric: str) -> str:
        return direction(self.trends[metric], self.late_trends.get(metric))


def measure(points: Sequence[Point]) -> TrainingMeasurements:
    """``trajectory`` and ``trend`` of every metric in ``METRICS`` from measured points."""
    trajs = {m: trajectory(points, m) for m in METRICS}
    trends = {m: trend(t) for m, t in trajs.items() if len(t.tokens) >= 2}
    late = {m: trend(t, last=LATE_POINTS) for m, t in trajs.items()
            if len(t.tokens) > LATE_POINTS}
    return TrainingMeasurements(tuple(points), trajs, trends,
                                trajectory(points, "top20_rotated"), late)


def measure_zoo(runs: Mapping[str, object], seed: int = 0, progress: bool = False,
                data_dir=None) -> TrainingMeasurements:
    """``measure`` over every seed of the 1-layer pair among ``runs`` (name -> ``ZooRun``)."""
    points = [p for name in pair_names(runs) for p in measure_run(runs[name], seed, progress,
                                                                  data_dir)]
    return measure(points)
