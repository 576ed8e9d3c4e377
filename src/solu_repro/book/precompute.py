"""Score every model the chapters will read, before they run, in parallel processes.

The chapters score models lazily (``BookContext.scores`` and ``control_scores``, cached next
to each run), and the book executes its notebooks one after another on one kernel, so on a
multi-core CPU the scoring of a whole zoo and its null controls would leave cores idle.
``precompute`` does the same cached work first, one model per task, in ``workers``
single-threaded processes; the chapters then find every cache warm. It changes no result: a
cache entry is the same file whether it was made here or by a notebook, and a missing one is
still made by the notebook that needs it.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from . import style


def tasks(ctx) -> dict[str, list[tuple[str, Any]]]:
    """What chapters 4 and 8 score (``ch04_interpretability.gather``), per model:
    ``("scores", settings or None)`` and ``("control", name)``; every model of the zoo, every
    seed."""
    from ..interp.controls import controls_for
    from ..interp.instruments import NULLS, UNION
    from .ch04_interpretability import one_layer_seeds

    out: dict[str, list[tuple[str, Any]]] = {name: [("scores", None)] for name in ctx.all_names}
    one = min(ctx.depths)
    seeds = one_layer_seeds(ctx)
    for variant in (f"{one}L-solu_ln", f"{one}L-gelu"):
        for name in seeds.get(variant, []):
            out[name] += [("control", "rotated")]
    for name in ctx.names:
        if style.depth_of(name) == one:
            out[name] += [("control", c) for c in controls_for(ctx.run(name))
                          if ("control", c) not in out[name]]  # (the run is trained by now)
    # the rotation-fair instruments (ch04_interpretability.gather_instruments)
    for names in seeds.values():
        for name in names:
            out[name] += [("control", c) for c in UNION if c and ("control", c) not in out[name]]
            out[name] += [("fair", c) for c in UNION]
            out[name] += [("probe", c) for c in (None, *NULLS)] + [("agreement", None)]
    for name in ctx.names:
        if style.depth_of(name) != one:
            out[name].append(("fair_own", None))
    # the pair over training (ch04_training.gather): every step each run kept
    from ..paper.s6_2_training import pair_names
    for name in pair_names(ctx.all_names, one):
        out[name].append(("training", None))
    out[ctx.names[0]].append(("rotation_test", None))  # the planted test, once per corpus
    # chapter 8's sparse dictionaries on the pair (ch08_features.gather_run, default settings)
    from .ch08_features import available, pair_seeds
    for names in (pair_seeds(ctx).values() if available(ctx) else ()):
        for name in names:
            out[name].append(("features", None))
    return out


def _work(scale: str, runs_dir: str, seed: int, name: str,
          items: list[tuple[str, Any]]) -> tuple[str, float]:
    import torch

    from .context import book_context

    torch.set_num_threads(1)
    start = time.perf_counter()
    ctx = book_context(scale=scale, runs_dir=runs_dir, seed=seed, interactive=False,
                       progress=False)
    for kind, arg in items:
        if kind == "scores":
            ctx.scores(name, arg)
        elif kind == "control":
            ctx.control_scores(name, arg)
        elif kind == "fair":
            ctx.fair_score(name, arg)
        elif kind == "fair_own":
            ctx.fair_score(name, arg, union=(None,))
        elif kind == "probe":
            ctx.probe(name, arg)
        elif kind == "agreement":
            ctx.judge_agreement(name)
        elif kind == "training":
            from ..paper.s6_2_training import measure_run
            measure_run(ctx.run(name), ctx.seed)
        elif kind == "rotation_test":
            ctx.rotation_test()
        elif kind == "features":
            from .ch08_features import gather_run
            gather_run(ctx, name)
    return name, time.perf_counter() - start


def precompute(ctx, workers: int | None = None, log=print) -> dict[str, float]:
    """Make chapter 4's scores of every model (cached) in ``workers`` processes (default: one
    per CPU core); returns the seconds spent per model. With one worker it does nothing: the
    notebooks score what they need as they go."""
    workers = workers or os.cpu_count() or 1
    if workers < 2:
        return {}
    from ..speed import train_flops_per_token
    from ..zoo import zoo_configs

    todo = tasks(ctx)
    configs = zoo_configs(ctx.scale)
    cost = {n: train_flops_per_token(configs[n].model)
            * (len(todo[n]) + 8 * len(configs[n].snapshot_steps)) for n in todo}
    order = sorted(todo, key=lambda n: -cost[n])
    log(f"scoring {len(order)} models ({sum(len(v) for v in todo.values())} scorings) in "
        f"{workers} processes before the notebooks run ...")
    start = time.perf_counter()
    out = {}
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(_work, ctx.scale, str(Path(ctx.runs_dir).resolve()), ctx.seed,
                               name, todo[name]) for name in order]
        for f in futures:
            name, seconds = f.result()
            out[name] = seconds
    log(f"  scored in {time.perf_counter() - start:.0f} s")
    return out
