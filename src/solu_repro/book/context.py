"""What every notebook does first: validate its papermill parameters and reach the model zoo.

A notebook's ``parameters`` cell holds plain values (papermill overwrites them); the next cell
passes them here::

    ctx = book_context(scale=scale, runs_dir=runs_dir, seed=seed, interactive=interactive)
    n_neurons = check_int("n_neurons", n_neurons, minimum=1, maximum=512)

A bad value raises ``ParameterError`` naming the parameter, what was given, what is allowed
and how to pass it, before any model is trained or loaded.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from .. import paths
from ..interp.controls import score_control
from ..interp.calibration import rotation_test_for
from ..interp.harvest import harvest_run
from ..interp.instruments import UNION, basis_score_run, judge_agreement_run, probe_run
from ..interp.score import ScoreSettings, score_run
from ..pretrained import PREFIX, PretrainedError, is_published, published_run
from ..zoo import SCALES, ZooRun, ensure_trained, seed_names, seed_of, zoo_configs

HOW_TO_PASS = ("pass it with papermill (`papermill NB.ipynb OUT.ipynb -p {name} VALUE`) or edit "
               "the notebook's parameters cell")


NO_RELEASED = ("No released models named (parameter models=[]): this section runs the same "
               "measurements on Neel Nanda's released SoLU/GELU models when you pass, e.g., "
               'models=["tl:solu-1l", "tl:gelu-1l"] after downloading them once (README, '
               "'Released models').")
"""What the released-models section of a chapter prints in the default book."""

ONE_MODEL_RULE = ("Each released model is one training run, and every neuron of it is scored: "
                  "these numbers are a census of one model per arm, with no interval. "
                  "Seed-to-seed noise cannot be measured on them, so by the book's rule a "
                  "comparison here is not testable unless a between-seed SD is borrowed "
                  "from the zoo's seeds (and then the table says so).")


class ParameterError(ValueError):
    """A notebook parameter has a value the notebook cannot use."""


def _fail(name: str, value: Any, allowed: str) -> ParameterError:
    return ParameterError(f"parameter {name}={value!r} is invalid: {allowed}; "
                          + HOW_TO_PASS.format(name=name))


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> Any:
    """``value`` if it is one of ``choices``, else a ``ParameterError``."""
    if value not in choices:
        raise _fail(name, value, f"use one of {list(choices)}")
    return value


def check_int(name: str, value: Any, minimum: int | None = None,
              maximum: int | None = None) -> int:
    """``value`` as an int within [minimum, maximum] (bools and fractional floats rejected)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer)) or \
            (isinstance(value, float) and not value.is_integer()):
        raise _fail(name, value, "it must be a whole number")
    value = int(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise _fail(name, value, f"it must be between {minimum} and {maximum}")
    return value


def check_float(name: str, value: Any, minimum: float | None = None,
                maximum: float | None = None) -> float:
    """``value`` as a finite float within [minimum, maximum]."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or \
            not np.isfinite(value):
        raise _fail(name, value, "it must be a finite number")
    value = float(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise _fail(name, value, f"it must be between {minimum} and {maximum}")
    return value


def check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _fail(name, value, "it must be True or False")
    return value


@dataclass
class BookContext:
    """The validated common parameters of a notebook and its access to the model zoo.

    Attributes:
        scale: "tiny" (tests, seconds), "cpu" (the published book) or "gpu".
        runs_dir: where zoo runs live (``$SOLU_RUNS_DIR`` or ``./runs`` by default).
        seed: seeds python, numpy and torch for anything random the notebook does.
        interactive: show ipywidgets (JupyterLab); the built book shows static figures.
        progress: show progress bars while training or harvesting.
    """

    scale: str
    runs_dir: Path
    seed: int = 0
    interactive: bool = True
    progress: bool = True
    _runs: dict[str, ZooRun] = field(default_factory=dict, repr=False)

    @property
    def names(self) -> list[str]:
        """The seed-0 zoo models of this scale, e.g. ["1L-gelu", "1L-solu_ln", ...,
        "1L-gelu_ln", "1L-solu_ln_b4"]: one model of each kind, what single-model views show."""
        return [n for n in zoo_configs(self.scale) if seed_of(n) == 0]

    @property
    def all_names(self) -> list[str]:
        """Every zoo model of this scale, the other seeds included ("1L-gelu-s1", ...)."""
        return list(zoo_configs(self.scale))

    def seeds(self, name: str) -> list[str]:
        """Every seed of ``name``'s variant, seed 0 first (["1L-gelu", "1L-gelu-s1", ...])."""
        check_choice("model", name, self.all_names)
        return seed_names(name, self.scale)

    @property
    def depths(self) -> tuple[int, ...]:
        return SCALES[self.scale].depths

    def model_config(self, name: str):
        """The ``ModelConfig`` of model ``name`` (without training it)."""
        check_choice("model", name, self.all_names)
        return zoo_configs(self.scale)[name].model

    def run(self, name: str) -> ZooRun:
        """The trained zoo model ``name``; trained first (with a progress bar) if missing."""
        if name not in self._runs:
            check_choice("model", name, self.all_names)
            self._runs[name] = ensure_trained(name, self.scale, self.runs_dir,
                                              progress=self.progress)
        return self._runs[name]

    def runs(self, names: Iterable[str] | None = None) -> dict[str, ZooRun]:
        """Several zoo models (all of them by default), in zoo order."""
        return {name: self.run(name) for name in (self.names if names is None else names)}

    def harvest(self, name: str):
        """The cached activation harvest of a zoo model (``solu_repro.interp.harvest_run``)."""
        return harvest_run(self.run(name), seed=self.seed, progress=self.progress)

    def scores(self, name: str, settings=None):
        """The cached automated interpretability scores of a zoo model (``score_run``), made
        from the same harvest as ``harvest(name)`` (same seed); ``settings``: a
        ``ScoreSettings`` other than the default (e.g. a stricter judge)."""
        return score_run(self.run(name), settings or ScoreSettings(), seed=self.seed,
                         progress=self.progress)

    def control_scores(self, name: str, control: str):
        """The cached scores of a null control of a zoo model (``interp.controls``)."""
        return score_control(self.run(name), control, seed=self.seed, progress=self.progress)

    def probe(self, name: str, control: str | None = None):
        """The cached sparse probing of a zoo model's neurons (or of a null control's
        directions) against the corpus's ground-truth labels (``interp.instruments.probe_run``)."""
        return probe_run(self.run(name), control, seed=self.seed, progress=self.progress)

    def fair_score(self, name: str, control: str | None = None,
                   union: tuple[str | None, ...] = UNION):
        """The cached rotation-fair judge score of a zoo model's basis (or of a null control),
        over the union of the explanations of the bases in ``union``
        (``interp.instruments.basis_score_run``)."""
        return basis_score_run(self.run(name), control, seed=self.seed, union=union,
                               progress=self.progress)

    def judge_agreement(self, name: str):
        """The judge's explanations of a zoo model checked against the ground-truth labels
        (``interp.instruments.judge_agreement_run``), cached."""
        return judge_agreement_run(self.run(name), seed=self.seed, progress=self.progress)

    def rotation_test(self):
        """The planted rotation test on this zoo's corpus (``interp.calibration``), cached
        beside the corpus."""
        run = self.run(self.names[0])
        return rotation_test_for(run.corpus(), run.config.model.n_ctx, seed=self.seed,
                                 progress=self.progress)

    def published(self, models: Any, sources: Any = ("default",)) -> "PublishedContext | None":
        """The released models named by the ``models`` parameter (``["tl:solu-1l", ...]``) as
        a context of their own, under zoo-style names ("1L-solu_ln"), so a chapter's
        functions run on them unchanged; None when ``models`` is empty (the default book).

        ``sources``: the corpus they are read on, tokenised with their own tokenizer (the
        embedded default corpus, or ``files:<glob>`` / ``hf:<name>``).
        """
        models = check_models("models", models)
        if not models:
            return None
        if isinstance(sources, str):
            sources = [sources]
        if not isinstance(sources, (list, tuple)) or not sources or \
                not all(isinstance(x, str) and x for x in sources):
            raise _fail("published_sources", sources, 'give a list of corpus sources, e.g. '
                        '["default"] or ["files:/path/*.txt"]')
        runs: dict[str, Any] = {}
        for source in models:
            try:
                run = published_run(source, self.runs_dir, tuple(sources))
            except PretrainedError as exc:
                raise _fail("models", source, str(exc)) from exc
            cfg = run.config.model
            key = f"{cfg.n_layers}L-{cfg.act_fn}"
            if key in runs:
                raise _fail("models", list(models),
                            f"{runs[key].name} and {run.name} are both {key}: name one "
                            "released model of each depth and activation")
            runs[key] = run
        order = sorted(runs, key=lambda k: (int(k.split("L-")[0]), k))
        return PublishedContext(scale=self.scale, runs_dir=self.runs_dir, seed=self.seed,
                                interactive=self.interactive, progress=self.progress,
                                released={k: runs[k] for k in order})


@dataclass
class PublishedContext(BookContext):
    """Released models (``solu_repro.pretrained``) where a chapter expects the zoo.

    Each model appears under the zoo-style name of its depth and activation ("1L-solu_ln",
    "4L-gelu"), one seed each; ``run(name).name`` is its real name ("tl:solu-1l"). Harvests
    and scores are cached under ``<runs_dir>/published/``.
    """

    released: dict[str, Any] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return list(self.released)

    @property
    def all_names(self) -> list[str]:
        return list(self.released)

    def model_config(self, name: str):
        return self.run(name).config.model

    def seeds(self, name: str) -> list[str]:
        check_choice("model", name, self.all_names)
        return [name]

    @property
    def depths(self) -> tuple[int, ...]:
        return tuple(sorted({self.model_config(n).n_layers for n in self.released}))

    def run(self, name: str):
        check_choice("model", name, self.all_names)
        return self.released[name]

    def sources_markdown(self) -> str:
        """Which released model each name stands for, its shape and where its files are."""
        lines = ["| here | released model | layers x neurons | d_model | vocabulary | files |",
                 "|---|---|---|---|---|---|"]
        for name, run in self.released.items():
            cfg = run.config.model
            lines.append(f"| {name} | `{run.name}` | {cfg.n_layers} x {cfg.d_mlp} | "
                         f"{cfg.d_model} | {cfg.d_vocab} | "
                         f"`{run.released.repo_id or run.released.directory}` |")
        return "\n".join(lines)


def check_models(name: str, value: Any) -> list[str]:
    """The ``models`` parameter: a list of released models, each ``tl:<alias>``,
    ``tl:<hub repo id>`` or ``tl:<local directory>`` (empty: none)."""
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise _fail(name, value, 'give a list such as ["tl:solu-1l", "tl:gelu-1l"]')
    bad = [v for v in value if not is_published(v)]
    if bad:
        raise _fail(name, value, f"each released model is named {PREFIX}<alias>, {PREFIX}<hub "
                    f"repo> or {PREFIX}<directory> (e.g. {PREFIX}solu-1l); not {bad}")
    return list(dict.fromkeys(value))


def book_context(scale: Any = "tiny", runs_dir: Any = None, seed: Any = 0,
                 interactive: Any = True, progress: Any = True) -> BookContext:
    """Validate a notebook's common parameters, seed everything and return its context.

    Args:
        scale: "tiny", "cpu" or "gpu" (``solu_repro.zoo.SCALES``).
        runs_dir: a directory for zoo runs, or None for ``$SOLU_RUNS_DIR`` / ``./runs``.
        seed: a non-negative int.
        interactive: True in JupyterLab (widgets), False when building the static book.
        progress: show progress bars.
    """
    scale = check_choice("scale", scale, list(SCALES))
    seed = check_int("seed", seed, minimum=0, maximum=2**31 - 1)
    interactive = check_bool("interactive", interactive)
    progress = check_bool("progress", progress)
    if runs_dir is None or runs_dir == "":
        root = paths.runs_dir()
    elif isinstance(runs_dir, (str, os.PathLike)):
        root = Path(runs_dir).expanduser()
        if root.exists() and not root.is_dir():
            raise _fail("runs_dir", runs_dir, "it exists and is not a directory")
    else:
        raise _fail("runs_dir", runs_dir, "it must be a directory path or None")
    problem = paths.writable_problem(root)
    if problem is not None:  # before a model is trained or a neuron scored, not after
        raise _fail("runs_dir", runs_dir if runs_dir not in (None, "") else str(root),
                    f"{root} cannot be written ({problem}): give a folder you can write "
                    "(or set SOLU_RUNS_DIR)")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return BookContext(scale=scale, runs_dir=root, seed=seed, interactive=interactive,
                       progress=progress)
