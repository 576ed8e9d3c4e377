"""Training throughput of GELU vs SoLU-LN models, measured side by side.

For every depth of a zoo scale this builds the matched GELU and SoLU-LN models exactly as the
zoo defines them (``solu_repro.zoo.zoo_configs``), and times full training steps on random
tokens: forward, ``next_token_loss``, backward, gradient clipping and an AdamW step over the
real ``param_groups``. The two models are interleaved (A B A B ... rounds) so that machine
noise (other processes, thermal drift) hits both alike; warmup steps are discarded and the
report gives the median step time of each model, the ratio of the medians, and the spread
(interquartile range of step times; a 90% bootstrap interval of the ratio; min..max of the
per-round ratios).

It also times the MLP activation stage alone (``MLPActivation`` "solu_ln" vs "gelu" on a
``(batch * n_ctx, d_mlp)`` tensor, forward + backward): that is the part of the overhead a
fused kernel would shrink; everything else in the step is identical between the two models.

The paper reports SoLU-LN costs <1% extra with proper GPU kernels. Unfused eager PyTorch on a
CPU is a worst case: softmax + an extra LayerNorm over d_mlp are memory-bound elementwise
passes that a fused kernel would do in one sweep.

On a CPU shared with other jobs, a thread pool with one thread per core stalls at every
parallel region (a thread waits for a core), which inflates and scrambles the timings; use
``--threads 1`` there.

The measurement itself (interleaving, medians, bootstrap interval, what a step does) lives in
``solu_repro.speed``, which the book's performance notebook also uses; this script runs it at
every depth with more rounds and prints the report.

Usage:
    python benchmarks/train_throughput.py                      # cpu zoo shapes, fp32
    python benchmarks/train_throughput.py --depths 1 --rounds 3 --json
    python benchmarks/train_throughput.py --threads 1              # CPU busy with other work
    python benchmarks/train_throughput.py --scale gpu --device cuda --precision bf16
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys

import torch

# interleave and ratio_stats are also imported from here by harvest_throughput.py.
from solu_repro.speed import interleave, make_activation_step, make_train_step, ratio_stats
from solu_repro.train import TrainConfig
from solu_repro.zoo import SCALES, model_name, zoo_configs

ACTS = ("gelu", "solu_ln")  # A (baseline), B (the paper's model)
PAPER_NOTE = "paper: <1% with proper GPU kernels"


# --- main ----------------------------------------------------------------------------------------
def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        sys.exit("error: --device cuda but torch sees no CUDA GPU")
    return torch.device(name)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--scale", choices=sorted(SCALES), default="cpu",
                   help="zoo shapes to use (gpu shapes are only sensible on a GPU)")
    p.add_argument("--depths", type=int, nargs="+", default=None,
                   help="depths to time (default: every depth of the scale's zoo)")
    p.add_argument("--rounds", type=int, default=8, help="interleaved A B rounds per depth")
    p.add_argument("--steps-per-round", type=int, default=1,
                   help="timed steps of each model per round")
    p.add_argument("--warmup", type=int, default=2,
                   help="discarded steps of each model before timing")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                   help="bf16 uses solu_repro.train.autocast_context; on CPUs without native "
                        "bf16 matmuls it is far slower than fp32")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--threads", type=int, default=None,
                   help="torch intra-op CPU threads (default: torch's choice, one per core). "
                        "On a machine busy with other work, --threads 1 avoids the stalls of "
                        "oversubscribed thread pools, which otherwise swamp the comparison")
    p.add_argument("--act-rounds", type=int, default=10,
                   help="interleaved rounds of the activation-only benchmark")
    p.add_argument("--act-steps-per-round", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true",
                   help="also print one machine-readable JSON line (prefixed 'JSON ')")
    args = p.parse_args(argv)
    for name in ("rounds", "steps_per_round", "act_rounds", "act_steps_per_round"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.threads is not None and args.threads < 1:
        p.error("--threads must be >= 1")
    if args.warmup < 0:
        p.error("--warmup must be >= 0")
    depths = SCALES[args.scale].depths
    args.depths = args.depths or list(depths)
    bad = [d for d in args.depths if d not in depths]
    if bad:
        p.error(f"depth(s) {bad} are not in the {args.scale} zoo (depths {list(depths)})")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    configs = zoo_configs(args.scale)
    s = SCALES[args.scale]
    if args.scale == "gpu" and device.type != "cuda":
        print("warning: gpu-scale shapes on a CPU will be extremely slow", file=sys.stderr)
    if args.precision == "bf16" and device.type == "cpu":
        print("warning: bf16 autocast on this CPU may be ~100x slower than fp32",
              file=sys.stderr)

    def cfg_for(depth: int, act: str) -> TrainConfig:
        return configs[model_name(depth, act)].replace(precision=args.precision,
                                                       device=device.type)

    any_cfg = cfg_for(args.depths[0], "gelu")
    tokens_per_step = any_cfg.tokens_per_step
    print(f"SoLU-LN vs GELU training throughput  scale={args.scale}  device={device}  "
          f"precision={args.precision}  torch={torch.__version__}  "
          f"threads={torch.get_num_threads()}  ({platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cpus, load avg {os.getloadavg()[0]:.1f})")
    print(f"shapes: d_model={s.d_model} n_heads={s.n_heads} d_head={s.d_head} d_mlp={s.d_mlp} "
          f"n_ctx={s.n_ctx} d_vocab={any_cfg.model.d_vocab} batch={s.batch_size} "
          f"({tokens_per_step} tokens/step)")
    print(f"timing: {args.warmup} warmup + {args.rounds} rounds x {args.steps_per_round} steps "
          f"per model, interleaved A B A B ...; medians, IQR in brackets")
    print()
    header = (f"{'depth':>5}  {'GELU ms/step':>22}  {'SoLU-LN ms/step':>22}  "
              f"{'GELU tok/s':>10}  {'SoLU tok/s':>10}  {'ratio':>6}  {'90% CI':>11}  "
              f"{'per-round ratios':>16}")
    print(header)
    print("-" * len(header))

    results = []
    for depth in args.depths:
        steps = {act: make_train_step(cfg_for(depth, act), device, args.seed) for act in ACTS}
        samples = interleave(steps, device, args.rounds, args.steps_per_round, args.warmup)
        a, b = samples["gelu"], samples["solu_ln"]
        r = ratio_stats(a, b)
        row = {"depth": depth, "ratio": r["ratio"], "ratio_ci90": [r["ci90_lo"], r["ci90_hi"]],
               "round_ratio_min": r["round_min"], "round_ratio_max": r["round_max"]}
        cells = []
        for act, smp in samples.items():
            lo, hi = smp.iqr()
            row[act] = {"median_s": smp.median, "iqr_s": [lo, hi],
                        "tokens_per_s": tokens_per_step / smp.median, "n_steps": len(smp.all)}
            cells.append(f"{smp.median * 1e3:8.1f} [{lo * 1e3:5.0f}-{hi * 1e3:5.0f}]")
        results.append(row)
        print(f"{depth:>5}  {cells[0]:>22}  {cells[1]:>22}  "
              f"{row['gelu']['tokens_per_s']:>10.0f}  {row['solu_ln']['tokens_per_s']:>10.0f}  "
              f"{r['ratio']:>5.3f}x  {r['ci90_lo']:>5.2f}-{r['ci90_hi']:.2f}  "
              f"{r['round_min']:>7.3f}-{r['round_max']:.3f}", flush=True)
        del steps, samples

    # Activation stage alone: the part a fused kernel would shrink.
    act_cfg = cfg_for(args.depths[0], "gelu")
    act_steps = {act: make_activation_step(act, act_cfg, device, args.seed) for act in ACTS}
    act_samples = interleave(act_steps, device, args.act_rounds, args.act_steps_per_round,
                             warmup=max(args.warmup, 3))
    ga, sb = act_samples["gelu"], act_samples["solu_ln"]
    act_r = ratio_stats(ga, sb)
    extra_act = sb.median - ga.median
    n_rows = s.batch_size * s.n_ctx
    print()
    print(f"MLP activation alone, fwd+bwd on ({n_rows}, {s.d_mlp}) "
          f"({args.act_rounds} rounds x {args.act_steps_per_round}):  "
          f"GELU {ga.median * 1e3:.2f} ms, SoLU-LN {sb.median * 1e3:.2f} ms  ->  "
          f"{act_r['ratio']:.2f}x (90% CI {act_r['ci90_lo']:.2f}-{act_r['ci90_hi']:.2f}), "
          f"+{extra_act * 1e3:.2f} ms per layer")
    for row in results:
        step_extra = row["solu_ln"]["median_s"] - row["gelu"]["median_s"]
        predicted = row["depth"] * extra_act
        row["activation_extra_s"] = predicted
        print(f"  {row['depth']}L: measured step difference {step_extra * 1e3:+.1f} ms, "
              f"activation-only prediction {row['depth']} x {extra_act * 1e3:.2f} = "
              f"{predicted * 1e3:+.1f} ms")

    overall = statistics.median(r["ratio"] for r in results)
    spread = (min(r["ratio"] for r in results), max(r["ratio"] for r in results))
    print()
    depth_note = (f"median over depths {args.depths}, range {spread[0]:.2f}-{spread[1]:.2f}x"
                  if len(results) > 1 else f"{results[0]['depth']}L")
    print(f"SoLU-LN / GELU step time: {overall:.2f}x ({depth_note}; {PAPER_NOTE})")
    print(f"SoLU-LN / GELU MLP activation alone: {act_r['ratio']:.2f}x "
          f"(the part a fused kernel would shrink)")
    widest = max(r["ratio_ci90"][1] - r["ratio_ci90"][0] for r in results)
    if widest > 0.1:
        print(f"note: noisy timings (a step-ratio 90% CI spans {widest:.2f}; load avg now "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cpus): the step ratio is not "
              "resolved at this level; the activation-only numbers are steadier. Rerun on an "
              "idle machine or with more --rounds"
              + (", or (if other jobs share the cores) with --threads 1."
                 if device.type == "cpu" and torch.get_num_threads() > 1 else "."))

    report = {
        "scale": args.scale, "device": str(device), "precision": args.precision,
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(), "load_avg_1min": os.getloadavg()[0],
        "tokens_per_step": tokens_per_step, "rounds": args.rounds,
        "steps_per_round": args.steps_per_round, "warmup": args.warmup,
        "depths": results, "step_ratio": overall,
        "activation": {"shape": [n_rows, s.d_mlp], "gelu_median_s": ga.median,
                       "solu_ln_median_s": sb.median, "ratio": act_r["ratio"],
                       "ratio_ci90": [act_r["ci90_lo"], act_r["ci90_hi"]],
                       "round_ratio_min": act_r["round_min"],
                       "round_ratio_max": act_r["round_max"]},
    }
    if args.json:
        print("JSON " + json.dumps(report, sort_keys=True))
    return report


if __name__ == "__main__":
    main()
