"""Neuron-harvesting throughput beside a plain forward pass, and its memory bound.

Builds a zoo model (``solu_repro.zoo.zoo_config(name, scale).model``; random init: the cost
does not depend on the weights) and the scale's corpus, then times, over the same rows of the
validation split:

* **forward**: ``get_rows`` + the forward pass the harvester runs
  (``ModelNeurons.activations``: ``inference_mode``, recording exactly the hooks it reads,
  ``hook_mid`` and ``hook_post`` when the model has SoLU's extra LN, and stopping there), in
  the precision a zoo run of the model trains in on this machine (``--precision auto``: bf16
  where the probe picks it), which ``harvest_run`` reads such a run in;
* **harvest**: ``solu_repro.interp.harvest`` (the same forward pass plus top-k, bucket
  counts, reservoirs and moments for every neuron and hook);
* **train**: one full training step of the same zoo model
  (``solu_repro.speed.make_train_step(cfg, device)``: forward, loss, backward, clipping,
  AdamW, in the precision the zoo trains in), ``cfg.batch_size`` rows of ``n_ctx`` tokens.

The three are interleaved (forward, harvest, train, forward, ...) so that machine noise hits
all alike; warmup passes are discarded; the report gives the median seconds per pass, the
tokens/s of each, the ratio of medians (harvest time / forward time) and the throughput ratio
harvest tokens/s / training tokens/s (issue 10's goal: >= 3x), each with a 90% bootstrap
interval and the range of the per-round ratios. Forward and harvest count the harvested
tokens (BOS excluded), training all ``n_ctx`` tokens of a row.

Memory: a harvest keeps O(layers x d_mlp x (k + buckets x samples)) numbers, independent of
the number of rows. To show it, a fresh process per size harvests N and then ~4N rows and
reports the peak-RSS growth of each phase over the RSS when it started (Linux: the kernel's
high-water mark ``VmHWM``, reset per phase through ``/proc/self/clear_refs``; elsewhere
``resource.getrusage``, which cannot be reset; glibc's mmap threshold is fixed, so that freed
blocks leave RSS); the two growths should match.

On a CPU shared with other jobs, a thread pool with one thread per core stalls at every
parallel region (a thread waits for a core), which inflates and scrambles the timings; use
``--threads 1`` there.

Usage:
    python benchmarks/harvest_throughput.py --threads 1          # 1L-solu_ln, cpu scale
    python benchmarks/harvest_throughput.py --threads 1 --rows 64   # the first batches only
    python benchmarks/harvest_throughput.py --name 4L-solu_ln --threads 1 --rows 64
    python benchmarks/harvest_throughput.py --name 4L-gelu --rows 32 --rounds 3 --no-train
    python benchmarks/harvest_throughput.py --scale tiny --json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from solu_repro import zoo
from solu_repro.data import build_dataset, get_rows, num_rows
from solu_repro.interp.harvest import N_BINS, ModelNeurons, harvest, selection_rows
from solu_repro.model import Transformer
from solu_repro.speed import interleave, make_train_step, ratio_stats, resolved_precision

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import PeakRSS, resolve_device  # noqa: E402

MEMORY_FACTOR = 4  # the second memory probe harvests this many times more rows
GOAL = 3.0  # issue 10: harvest tokens/s >= 3x the training tokens/s of the same model


# --- what is timed -------------------------------------------------------------------------------
def setup(args: argparse.Namespace, device: torch.device):
    """The zoo model (random init, eval mode), its corpus' val split and BOS id."""
    cfg = zoo.zoo_config(args.name, args.scale)
    model = Transformer(cfg.model).to(device).eval()
    corpus = build_dataset(cfg.data, args.data_dir, progress=True)
    return model, corpus.split("val"), corpus.bos_id


def make_forward(model: Transformer, split, rows: np.ndarray, bos_id: int, batch_size: int,
                 device: torch.device, precision: str = "fp32") -> Callable[[], None]:
    """The harvester's forward passes over ``rows``, recording the hooks it reads."""
    neurons = ModelNeurons(model, precision)
    n_ctx = model.cfg.n_ctx

    def forward() -> None:
        for i in range(0, len(rows), batch_size):
            tokens = get_rows(split, rows[i:i + batch_size], n_ctx, bos_id).to(device)
            neurons.activations(tokens)

    return forward


def make_harvest(model: Transformer, split, rows: np.ndarray, bos_id: int,
                 args: argparse.Namespace, device: torch.device) -> Callable[[], object]:
    def run():
        return harvest(model, split, model.cfg.n_ctx, bos_id, rows=rows, k=args.k,
                       samples_per_bin=args.samples_per_bin, batch_size=args.batch_size,
                       seed=args.seed, device=device, progress=False,
                       precision=args.precision)

    return run


def memory_probe(args: argparse.Namespace) -> dict:
    """In this (fresh) process: peak-RSS growth of a forward pass, then of a harvest, over
    ``args.memory_probe`` rows, each over the RSS at its start."""
    rss = PeakRSS()
    inherited = rss.peak()
    device = resolve_device(args.device)
    model, split, bos_id = setup(args, device)
    rows = np.arange(args.memory_probe)
    args.precision = resolve_precision(args, device)
    make_forward(model, split, rows[:args.batch_size], bos_id, args.batch_size, device,
                 args.precision)()
    small = make_harvest(model, split, rows[:args.batch_size], bos_id, args, device)()
    del small  # warm: the harvest's code paths and allocator pools are set up
    base = rss.reset()
    make_forward(model, split, rows, bos_id, args.batch_size, device, args.precision)()
    after_forward = rss.peak()
    start = rss.reset()
    result = make_harvest(model, split, rows, bos_id, args, device)()
    after_harvest = rss.peak()
    result_mb = sum(t.numel() * t.element_size() for fields in result.tensors.values()
                    for t in fields.values()) / 2 ** 20
    return {"rows": len(rows), "tokens": len(rows) * (model.cfg.n_ctx - 1),
            "forward_mb": after_forward - base, "harvest_mb": after_harvest - start,
            "result_mb": result_mb, "peak_mb": after_harvest, "resettable": rss.resettable,
            "baseline_masked": not rss.resettable and base <= inherited}


def run_probe(args: argparse.Namespace, n_rows: int) -> dict:
    """``memory_probe`` in a fresh interpreter, so earlier peaks do not hide this one."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--memory-probe", str(n_rows),
           "--scale", args.scale, "--name", args.name, "--batch-size", str(args.batch_size),
           "--k", str(args.k), "--samples-per-bin", str(args.samples_per_bin),
           "--seed", str(args.seed), "--device", args.device, "--precision", args.precision]
    if args.threads is not None:
        cmd += ["--threads", str(args.threads)]
    if args.data_dir is not None:
        cmd += ["--data-dir", str(args.data_dir)]
    env = dict(os.environ)
    if args.threads is not None:
        env["OMP_NUM_THREADS"] = str(args.threads)
    # glibc raises its mmap threshold each time a large block is freed, after which blocks
    # of that size come from the heap and stay resident once freed: RSS then tracks
    # fragmentation, not live memory. A fixed threshold returns them to the system.
    env.setdefault("MALLOC_MMAP_THRESHOLD_", "131072")
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        sys.exit(f"error: memory probe with {n_rows} rows failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def resolve_precision(args: argparse.Namespace, device: torch.device) -> str:
    """``--precision``, with auto resolved as a zoo run of the model would be trained here."""
    if args.precision != "auto":
        return args.precision
    return resolved_precision(zoo.zoo_config(args.name, args.scale), device)


# --- main ----------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--scale", choices=sorted(zoo.SCALES), default="cpu",
                   help="zoo shapes and corpus (gpu shapes are only sensible on a GPU)")
    p.add_argument("--name", default="1L-solu_ln", help="zoo model, e.g. 2L-gelu")
    p.add_argument("--rows", type=int, default=None,
                   help="validation rows per timed pass (default: as many as a zoo harvest "
                        "reads, the even rows of the split: 320 at the cpu scale; the first "
                        "batches cost more, while the reservoirs fill)")
    p.add_argument("--memory-rows", type=int, default=64,
                   help=f"rows of the first memory probe (the second harvests "
                        f"{MEMORY_FACTOR}x as many)")
    p.add_argument("--batch-size", type=int, default=16, help="rows per forward pass")
    p.add_argument("--rounds", type=int, default=5, help="interleaved forward/harvest rounds")
    p.add_argument("--warmup", type=int, default=1, help="discarded passes of each first")
    p.add_argument("--k", type=int, default=20, help="top firings kept per neuron")
    p.add_argument("--samples-per-bin", type=int, default=4, help="reservoir size per bucket")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                   help="precision of the harvest's forward pass; auto: the one a zoo run of "
                        "the model trains in here (the precision probe), as harvest_run reads "
                        "a run in its training precision")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="where the model runs (the harvest statistics are kept on the CPU)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch intra-op CPU threads (default: torch's choice, one per core). "
                        "On a machine busy with other work, --threads 1 avoids the stalls of "
                        "oversubscribed thread pools, which otherwise swamp the comparison")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="corpus cache (default: solu_repro.paths.data_dir())")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-RSS probes")
    p.add_argument("--no-train", action="store_true",
                   help="skip the training step (and the harvest/training ratio)")
    p.add_argument("--json", action="store_true",
                   help="also print one machine-readable JSON line (prefixed 'JSON ')")
    p.add_argument("--memory-probe", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for name in ("rows", "memory_rows", "batch_size", "rounds", "k", "samples_per_bin"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.warmup < 0:
        p.error("--warmup must be >= 0")
    if args.threads is not None and args.threads < 1:
        p.error("--threads must be >= 1")
    try:
        zoo.zoo_config(args.name, args.scale)
    except ValueError as exc:
        p.error(str(exc))
    return args


def main(argv: list[str] | None = None) -> dict | None:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.memory_probe is not None:
        print(json.dumps(memory_probe(args)))
        return None
    device = resolve_device(args.device)
    model, split, bos_id = setup(args, device)
    args.precision = resolve_precision(args, device)
    m = model.cfg
    available = num_rows(split, m.n_ctx)
    if args.rows is None:
        args.rows = len(selection_rows(available, "even"))
    if args.rows > available:
        sys.exit(f"error: --rows {args.rows} but the {args.scale} val split has only "
                 f"{available} rows of n_ctx={m.n_ctx}")
    rows = np.arange(args.rows)
    tokens = args.rows * (m.n_ctx - 1)  # BOS is not harvested; count the same tokens for both
    hooks = ModelNeurons(model).hooks
    cfg = zoo.zoo_config(args.name, args.scale)
    train_tokens = cfg.batch_size * m.n_ctx
    names = "forward harvest" + ("" if args.no_train else " train")
    print(f"Harvest vs forward{'' if args.no_train else ' vs training'} throughput  "
          f"scale={args.scale}  model={args.name} (random init)  "
          f"device={device}  torch={torch.__version__}  threads={torch.get_num_threads()}  "
          f"({platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
          f"load avg {os.getloadavg()[0]:.1f})")
    print(f"shapes: n_layers={m.n_layers} d_model={m.d_model} d_mlp={m.d_mlp} n_ctx={m.n_ctx} "
          f"hooks={'+'.join(hooks)}; {args.rows} val rows ({tokens} tokens) per pass, "
          f"batch={args.batch_size}, k={args.k}, samples_per_bin={args.samples_per_bin}, "
          f"{N_BINS} buckets; harvest precision {args.precision}")
    if not args.no_train:
        print(f"train: solu_repro.speed.make_train_step(zoo_config({args.name!r}, "
              f"{args.scale!r})): one optimizer step of {cfg.batch_size} x {m.n_ctx} = "
              f"{train_tokens} tokens (grad_accum={cfg.grad_accum}, "
              f"precision={cfg.precision})")
    print(f"timing: {args.warmup} warmup + {args.rounds} rounds of each pass, interleaved "
          f"{names} ...; medians, IQR in brackets", flush=True)
    print()
    # Probe memory before this process grows (only matters where peak RSS cannot be reset).
    sizes = [min(args.memory_rows, available), min(MEMORY_FACTOR * args.memory_rows, available)]
    memory = [] if args.no_memory else [run_probe(args, n) for n in sizes]

    passes = {"forward": make_forward(model, split, rows, bos_id, args.batch_size, device,
                                      args.precision),
              "harvest": make_harvest(model, split, rows, bos_id, args, device)}
    if not args.no_train:
        passes["train"] = make_train_step(cfg, device, seed=args.seed)
    samples = interleave(passes, device, args.rounds, 1, args.warmup)
    fwd, hv = samples["forward"], samples["harvest"]
    r = ratio_stats(fwd, hv)
    header = f"{'pass':<8}  {'s/pass':>22}  {'tokens/pass':>11}  {'tokens/s':>10}"
    print(header)
    print("-" * len(header))
    report_passes = {}
    for name, smp in samples.items():
        lo, hi = smp.iqr()
        n = train_tokens if name == "train" else tokens
        report_passes[name] = {"median_s": smp.median, "iqr_s": [lo, hi], "tokens": n,
                               "tokens_per_s": n / smp.median, "n_passes": len(smp.all)}
        print(f"{name:<8}  {smp.median:8.3f} [{lo:5.3f}-{hi:5.3f}]  {n:>11}  "
              f"{n / smp.median:>10,.0f}")
    per_batch = (hv.median - fwd.median) / -(-args.rows // args.batch_size)
    print()
    print(f"harvest / forward time: {r['ratio']:.2f}x (90% CI {r['ci90_lo']:.2f}-"
          f"{r['ci90_hi']:.2f}; per-round ratios {r['round_min']:.2f}-{r['round_max']:.2f}); "
          f"the accumulators add {per_batch * 1e3:.0f} ms per batch of "
          f"{args.batch_size * (m.n_ctx - 1)} tokens "
          f"({len(hooks)} hook(s) x {m.n_layers} layer(s) x {m.d_mlp} neurons)")
    spreads = [r["ci90_hi"] - r["ci90_lo"] > 0.1 * r["ratio"]]
    vs_train = None
    if not args.no_train:
        # tokens/s ratio = (harvest tokens / harvest s) / (train tokens / train s)
        t = ratio_stats(hv, samples["train"])  # train time / harvest time
        scale = tokens / train_tokens
        vs_train = {key: value * scale for key, value in t.items()}
        verdict = ("meets it" if vs_train["ratio"] >= GOAL else
                   f"MISSES it by {100 * (1 - vs_train['ratio'] / GOAL):.1f}%")
        print(f"harvest tokens/s \u00f7 training tokens/s = {vs_train['ratio']:.2f}x "
              f"(goal \u2265 {GOAL:g}x): {verdict}; 90% CI {vs_train['ci90_lo']:.2f}-"
              f"{vs_train['ci90_hi']:.2f}, per-round ratios {vs_train['round_min']:.2f}-"
              f"{vs_train['round_max']:.2f}")
        spreads.append(vs_train["ci90_hi"] - vs_train["ci90_lo"] > 0.1 * vs_train["ratio"])
    if any(spreads):
        print(f"note: noisy timings (a ratio's 90% CI spans over 10% of it; load avg now "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cpus). Rerun on an idle machine "
              f"or with more --rounds"
              + (", or (if other jobs share the cores) with --threads 1."
                 if device.type == "cpu" and torch.get_num_threads() > 1 else "."))

    if memory:
        print()
        how = ("VmHWM, reset per phase" if all(p.get("resettable") for p in memory)
               else "resource.getrusage")
        print(f"memory: peak-RSS growth in a fresh process per size ({how}) over the RSS at the "
              f"phase's start, after a warmup forward pass and harvest of one batch; the "
              f"harvest follows a forward pass over the same rows")
        header = (f"{'rows':>6}  {'tokens':>8}  {'forward':>9}  {'harvest':>9}  "
                  f"{'result tensors':>14}")
        print(header)
        print("-" * len(header))
        for probe in memory:
            print(f"{probe['rows']:>6}  {probe['tokens']:>8}  {probe['forward_mb']:>+7.1f}MB  "
                  f"{probe['harvest_mb']:>+7.1f}MB  {probe['result_mb']:>12.1f}MB", flush=True)
        a, b = memory
        if any(probe["baseline_masked"] for probe in memory):
            print("warning: a probe's baseline is below the peak RSS it inherited from this "
                  "process, so its growth is underestimated")
        if b["rows"] < MEMORY_FACTOR * a["rows"]:
            print(f"(the val split has {available} rows: the second probe uses all of them)")
        growth = b["harvest_mb"] / max(a["harvest_mb"], 1.0)
        verdict = ("does not grow with the rows" if growth < 1.5 else
                   "GROWS with the rows: the harvest should be O(layers x d_mlp) in memory")
        print(f"{b['rows'] / a['rows']:.1f}x the rows -> {growth:.2f}x the harvest's peak-RSS "
              f"growth: memory {verdict}. It is the {a['result_mb']:.1f} MB result "
              f"(layers x d_mlp x (k + {N_BINS} buckets x samples)) plus per-batch "
              f"temporaries (batch x n_ctx x d_mlp)")

    report = {
        "scale": args.scale, "name": args.name, "device": str(device),
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(), "load_avg_1min": os.getloadavg()[0],
        "rows": args.rows, "tokens_per_pass": tokens, "batch_size": args.batch_size,
        "k": args.k, "samples_per_bin": args.samples_per_bin, "rounds": args.rounds,
        "warmup": args.warmup, "precision": args.precision, "passes": report_passes, "harvest_forward_ratio": r["ratio"],
        "ratio_ci90": [r["ci90_lo"], r["ci90_hi"]],
        "round_ratio_min": r["round_min"], "round_ratio_max": r["round_max"],
        "memory": memory, "train_tokens_per_step": None if args.no_train else train_tokens,
        "harvest_train_throughput_ratio": None if vs_train is None else vs_train["ratio"],
        "harvest_train_ci90": None if vs_train is None else [vs_train["ci90_lo"],
                                                             vs_train["ci90_hi"]],
    }
    if args.json:
        print("JSON " + json.dumps(report, sort_keys=True))
    return report


if __name__ == "__main__":
    main()
