"""What the book trains at each scale, computed from the zoo's own configs (never typed in)."""

from __future__ import annotations

from typing import Any

import torch

from ..model import Transformer
from ..zoo import SCALES, composition, zoo_configs
from . import style


def zoo_overview(scale: str) -> list[dict[str, Any]]:
    """One row per zoo model of ``scale``: shape, neurons, parameters and token budget."""
    rows = []
    for name, cfg in zoo_configs(scale).items():
        m = cfg.model
        with torch.device("meta"):  # counts parameters without allocating them
            model = Transformer(m)
        rows.append({"model": name, "activation": style.label(m.act_fn), "layers": m.n_layers,
                     "d_model": m.d_model, "d_mlp": m.d_mlp, "neurons": m.n_layers * m.d_mlp,
                     "params (non-embedding)": model.n_params(non_embedding=True),
                     "tokens": cfg.max_steps * cfg.tokens_per_step})
    return rows


def scale_summary() -> list[dict[str, Any]]:
    """One row per scale: shape, depths, token budget per model and the corpus."""
    out = []
    for name, s in SCALES.items():
        out.append({"scale": name, "models": composition(name),
                    "runs": len(zoo_configs(name)),
                    "d_model": s.d_model, "d_mlp": s.d_mlp, "n_ctx": s.n_ctx,
                    "vocab": s.data.vocab_size,
                    "tokens per model": f"{s.max_steps * s.batch_size * s.n_ctx:,}",
                    "corpus": ", ".join(s.data.sources)})
    return out




def _precision_cell(result: dict[str, Any]) -> str:
    choice = result.get("precision_choice")
    if choice is None:  # a run finished before the choice was recorded ran fp32 on CPU
        return result.get("precision", "fp32 (not recorded)")
    reason = choice["reason"]
    if reason not in ("probe", "zoo probe"):
        return f"{choice['precision']} ({reason})"
    if choice.get("speedup") is None:
        return (f"{choice['precision']} ({reason}: bf16 emulated on {choice['cpu_capability']}, "
                f"a matmul {1 / choice['matmul_speedup']:.0f}x slower)")
    return (f"{choice['precision']} ({reason}: bf16 {choice['speedup']:.2f}x fp32 on "
            f"{choice['cpu_capability']})")


def training_rows(runs: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per trained zoo run: the precision it chose and why, its time and speed.

    ``runs``: name -> ``ZooRun``. The speed is tokens over training seconds (evaluations and
    checkpoints included), as this build's machine ran it.
    """
    rows = []
    for name, run in runs.items():
        r = run.result
        seconds = r.get("train_seconds") or float("nan")
        rows.append({"model": name, "precision": _precision_cell(r),
                     "device": r.get("device", "?"), "tokens": r["tokens"],
                     "minutes": f"{seconds / 60:.1f}",
                     "tokens/s": f"{r['tokens'] / seconds:,.0f}"})
    return rows
