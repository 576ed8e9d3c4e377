"""Training throughput: this project's step against TransformerLens, and SoLU-LN against GELU.

1. **Against TransformerLens** (``--tl-depths``, default the 1-layer SoLU-LN model at the
   scale's shapes): this project's training step (``solu_repro.speed.make_train_step``, the
   very ``train_step`` the zoo runs) in its default precision (``precision="auto"``: probed
   on this machine, ``solu_repro.train.precision``) and in fp32; the step before the fused loss
   ("plain logits": every position's full logits, then ``next_token_loss``); and a
   TransformerLens 3.x ``HookedTransformer`` of the same architecture and weights trained the
   way its docs do, in fp32 and under bf16 autocast. All interleaved in one run. It prints
   tokens/s, the ratio to TransformerLens fp32 (goal: 3x) and the MFU: model FLOPs per
   second (``speed.train_flops_per_token``) over the FLOP/s of a 2048^3 matmul of the same
   dtype (``speed.make_matmul``) timed in the same interleaved rounds as the steps (the
   median of each, so the peak and the steps see the same machine; the best matmul is
   printed too). A fresh process per step kind then measures the peak-RSS growth of three
   steps (the plain step holds the full logits and their gradient).

   The allocator: this project's CPU step keeps the memory it frees mapped
   (``train.step.keep_freed_memory``, process-wide), which spares TransformerLens's step in
   the same process its page faults as well (its full logits: 1.3x at the cpu shapes). So
   TransformerLens is also timed *as shipped*, in a process of its own with glibc's default
   allocator (``RemoteStep``, in the same interleaved rounds): the ratio a user of each
   library sees. The table's ratios are to TransformerLens in this process (same allocator).
2. ``--compile``: the default step eager against ``torch.compile``, with the compile time.
3. ``--processes``: aggregate tokens/s of one process on every core against one 1-thread
   process per core, each training its own model (as a zoo could).
4. **SoLU-LN against GELU** at every depth of the scale (paper §5: under 1% with proper GPU
   kernels): matched models built exactly as the zoo defines them, full training steps on
   random tokens, interleaved A B A B; medians, the ratio, a 90% bootstrap interval, and the
   MLP activation stage alone (the part a fused kernel would shrink).

On a CPU shared with other jobs, a thread pool with one thread per core stalls at every
parallel region (a thread waits for a core), which inflates and scrambles the timings; use
``--threads 1`` there.

The measurement itself (interleaving, medians, bootstrap interval, what a step does) lives in
``solu_repro.speed``, which the book's performance notebook also uses.

Usage:
    python benchmarks/train_throughput.py                        # cpu shapes, all sections 1, 4
    python benchmarks/train_throughput.py --depths 1 --compile --processes
    python benchmarks/train_throughput.py --threads 1            # CPU busy with other work
    python benchmarks/train_throughput.py --scale gpu --device cuda --tl-depths 1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import torch

# interleave and ratio_stats are also imported from here by harvest_throughput.py.
from measure import PeakRSS, resolve_device  # benchmarks/ is on sys.path when run
from solu_repro.train import precision as precision_mod
from solu_repro.model import Transformer, next_token_loss
from solu_repro.speed import (interleave, make_activation_step, make_matmul, make_train_step,
                              matmul_flops, ratio_stats, train_flops_per_token)
from solu_repro.train import TrainConfig, make_optimizer
from solu_repro.zoo import SCALES, model_name, zoo_configs

ACTS = ("gelu", "solu_ln")  # A (baseline), B (the paper's model)
PAPER_NOTE = "paper: <1% with proper GPU kernels"


# --- TransformerLens, the library to beat ------------------------------------------------------
def make_tl_step(cfg: TrainConfig, device: torch.device, seed: int, bf16: bool):
    """A TransformerLens ``HookedTransformer`` of the same architecture and weights, trained
    the way its docs train one: ``model(tokens, return_type="loss")``, backward, gradient
    clipping, AdamW (one group at the hidden lr; the grouping costs nothing measurable)."""
    from solu_repro.interop import to_hooked_transformer

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.model.seed)
        ht = to_hooked_transformer(Transformer(cfg.model)).to(device).train()
    opt = torch.optim.AdamW(ht.parameters(), lr=cfg.peak_lr_hidden, betas=cfg.betas,
                            weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, cfg.model.d_vocab, (cfg.batch_size, cfg.model.n_ctx),
                           generator=gen).to(device)

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = ht(tokens, return_type="loss")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(ht.parameters(), cfg.grad_clip or float("inf"))
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def make_plain_step(cfg: TrainConfig, device: torch.device, seed: int):
    """The step before the fused loss, for comparison: the model on every position, the
    full ``(batch, n_ctx, d_vocab)`` logits, ``next_token_loss`` on them (fp32)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.model.seed)
        model = Transformer(cfg.model).to(device).train()
    opt = make_optimizer(model, cfg, device)
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, cfg.model.d_vocab, (cfg.batch_size, cfg.model.n_ctx),
                           generator=gen).to(device)

    def step() -> None:
        loss = next_token_loss(model(tokens), tokens)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip or float("inf"))
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


class RemoteStep:
    """A step run in a child process of its own (``--tl-worker``), one per call: the child's
    allocator is glibc's default (nothing there calls ``keep_freed_memory``)."""

    def __init__(self, cfg: TrainConfig, seed: int, threads: int | None, bf16: bool):
        cmd = [sys.executable, __file__, "--tl-worker", "bf16" if bf16 else "fp32",
               "--worker-config", json.dumps(cfg.to_dict()), "--seed", str(seed),
               "--device", "cpu"]
        if threads is not None:
            cmd += ["--threads", str(threads)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)
        self._expect("ready")

    def _expect(self, word: str) -> None:
        for line in self.proc.stdout:  # (TransformerLens prints as it builds its model)
            if line.strip() == word:
                return
        raise RuntimeError(f"the TransformerLens worker exited (code {self.proc.wait()})")

    def __call__(self) -> None:
        self.proc.stdin.write("step\n")
        self.proc.stdin.flush()
        self._expect("done")

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def tl_worker(args) -> None:
    """(Child process) TransformerLens steps on request: one per line read, "done" after each."""
    cfg = TrainConfig.from_dict(json.loads(args.worker_config))
    step = make_tl_step(cfg, torch.device("cpu"), args.seed, bf16=args.tl_worker == "bf16")
    print("ready", flush=True)
    for _ in sys.stdin:
        step()
        print("done", flush=True)


STEP_KINDS = ("default", "fp32", "plain")


def make_step(kind: str, cfg: TrainConfig, device: torch.device, seed: int):
    if kind == "plain":
        return make_plain_step(cfg, device, seed)
    return make_train_step(cfg if kind == "default" else cfg.replace(precision=kind), device,
                           seed)


def compare_with_transformer_lens(cfg: TrainConfig, device: torch.device, args,
                                  memory: bool = True, as_shipped: bool | None = None) -> dict:
    """This project's step in its default precision, in fp32, and TransformerLens's step in
    fp32 and under bf16 autocast, interleaved; tokens/s, MFU and the ratios to TL; on a CPU
    (``as_shipped``, default) also TransformerLens in processes of its own (``RemoteStep``)."""
    if as_shipped is None:
        as_shipped = device.type == "cpu"
    default = precision_mod.choose(cfg, device)
    peak_fns = {"fp32": make_matmul(torch.float32, device),
                "bf16": make_matmul(torch.bfloat16, device)}
    steps = {f"solu_repro ({default.precision}, default)": make_step("default", cfg, device,
                                                                     args.seed)}
    if default.precision != "fp32":
        steps["solu_repro (fp32)"] = make_step("fp32", cfg, device, args.seed)
    steps["solu_repro plain logits (fp32)"] = make_step("plain", cfg, device, args.seed)
    steps["TransformerLens (fp32)"] = make_tl_step(cfg, device, args.seed, bf16=False)
    steps["TransformerLens (bf16 autocast)"] = make_tl_step(cfg, device, args.seed, bf16=True)
    threads = getattr(args, "threads", None)
    shipped = {} if not as_shipped else {
        "TL fp32, own process": RemoteStep(cfg, args.seed, threads, bf16=False),
        "TL bf16 autocast, own process": RemoteStep(cfg, args.seed, threads, bf16=True)}
    steps.update(shipped)
    steps.update({f"matmul {dtype}": fn for dtype, fn in peak_fns.items()})
    try:
        samples = interleave(steps, device, args.tl_rounds, 1, args.warmup)
    finally:
        for remote in shipped.values():
            remote.close()
    own = {name: samples.pop(name) for name in shipped}
    matmuls = {dtype: samples.pop(f"matmul {dtype}") for dtype in peak_fns}
    peaks = {dtype: matmul_flops() / smp.median for dtype, smp in matmuls.items()}
    best_peaks = {dtype: matmul_flops() / min(smp.all) for dtype, smp in matmuls.items()}
    tokens = cfg.tokens_per_step
    flops = train_flops_per_token(cfg.model) * tokens
    tl = samples["TransformerLens (fp32)"]
    rows = []
    print(f"{cfg.name}: {tokens} tokens/step, {flops / 1e9:.1f} GFLOP/step (6 per weight per "
          f"token + attention)")
    print(f"MFU is against this run's matmul peak: a 2048^3 matmul on "
          f"{torch.get_num_threads()} thread(s), timed in the same interleaved rounds as the "
          f"steps, median fp32 {peaks['fp32'] / 1e9:.0f}, bf16 {peaks['bf16'] / 1e9:.0f} "
          f"GFLOP/s (best {best_peaks['fp32'] / 1e9:.0f}, {best_peaks['bf16'] / 1e9:.0f}); a "
          f"step is measured against the peak of its matmul dtype")
    header = (f"{'step':<32}  {'ms/step':>8}  {'tokens/s':>9}  {'MFU':>10}  "
              f"{'vs TL fp32':>10}  {'90% CI':>11}")
    print(header)
    print("-" * len(header))
    for name, smp in samples.items():
        dtype = "bf16" if "bf16" in name else "fp32"
        r = ratio_stats(smp, tl)  # TL time / this time = this speed / TL speed
        row = {"name": name, "median_s": smp.median, "tokens_per_s": tokens / smp.median,
               "mfu": flops / smp.median / peaks[dtype], "peak_dtype": dtype,
               "vs_tl_fp32": r["ratio"], "vs_tl_fp32_ci90": [r["ci90_lo"], r["ci90_hi"]]}
        rows.append(row)
        print(f"{name:<32}  {smp.median * 1e3:>8.0f}  {row['tokens_per_s']:>9,.0f}  "
              f"{100 * row['mfu']:>5.1f}% {dtype}  {r['ratio']:>9.2f}x  "
              f"{r['ci90_lo']:>5.2f}-{r['ci90_hi']:.2f}", flush=True)
    best_tl = min(samples["TransformerLens (fp32)"].median,
                  samples["TransformerLens (bf16 autocast)"].median)
    ours = next(iter(samples.values())).median
    shipped_ratios = {name: ratio_stats(next(iter(samples.values())), smp)
                      for name, smp in own.items()}
    if own:
        print("TransformerLens as shipped: in a process of its own, glibc's default allocator "
              "(the default step's speed over it):")
    for name, smp in own.items():
        r = shipped_ratios[name]
        print(f"{name:<32}  {smp.median * 1e3:>8.0f}  {tokens / smp.median:>9,.0f}  {'':>10}  "
              f"{r['ratio']:>9.2f}x  {r['ci90_lo']:>5.2f}-{r['ci90_hi']:.2f}", flush=True)
    shipped_note = (f", {shipped_ratios['TL fp32, own process']['ratio']:.2f}x as each ships "
                    "(TL in its own process, glibc's default allocator)" if own else "")
    print(f"default step vs TransformerLens fp32: {rows[0]['vs_tl_fp32']:.2f}x in one process "
          f"(one allocator){shipped_note}; goal 3x; vs TL's faster precision: "
          f"{best_tl / ours:.2f}x in one process; MFU {100 * rows[0]['mfu']:.1f}% of this run's "
          f"{rows[0]['peak_dtype']} matmul peak. Precision: {default}")
    rss = None
    if memory and device.type == "cpu":
        rss = {kind: memory_probe(args, cfg.name, kind) for kind in STEP_KINDS}
        print("peak-RSS growth over 3 steps (fresh process each, over the built model): "
              + ", ".join(f"{kind} {mb:+.0f} MB" for kind, mb in rss.items())
              + "  (plain: the full logits and their gradient)")
    return {"model": cfg.name, "tokens_per_step": tokens, "flops_per_step": flops,
            "peak_rss_growth_mb": rss,
            "peak_flops": peaks, "best_peak_flops": best_peaks,
            "precision": default.to_dict(), "steps": rows, "mfu": rows[0]["mfu"],
            "vs_tl_fp32": rows[0]["vs_tl_fp32"], "vs_tl_best": best_tl / ours,
            "vs_tl_as_shipped": {name: r["ratio"] for name, r in shipped_ratios.items()},
            "tl_own_process_median_s": {name: smp.median for name, smp in own.items()}}


# --- one process at n threads, or n processes at one thread ------------------------------------
def child_steps(args) -> None:
    """(Child process) time ``--child-steps`` default steps of one model, print JSON."""
    cfg = zoo_configs(args.scale)[model_name(args.depths[0], "solu_ln")]
    step = make_train_step(cfg, "cpu", args.seed)
    step()
    t0 = time.perf_counter()
    for _ in range(args.child_steps):
        step()
    print(json.dumps({"seconds": time.perf_counter() - t0,
                      "tokens": args.child_steps * cfg.tokens_per_step}))


def child_memory(args) -> None:
    """(Child process) peak-RSS growth of 3 steps of one step kind over the built model."""
    cfg = zoo_configs(args.scale)[args.memory_model].replace(device="cpu")
    step = make_step(args.memory_kind, cfg, torch.device("cpu"), args.seed)
    rss = PeakRSS()
    before = rss.reset()
    for _ in range(3):
        step()
    print(json.dumps({"growth_mb": rss.peak() - before, "peak_mb": rss.peak()}))


def memory_probe(args, model: str, kind: str) -> float:
    cmd = [sys.executable, __file__, "--scale", args.scale, "--memory-model", model,
           "--memory-kind", kind, "--seed", str(args.seed)]
    if args.threads is not None:
        cmd += ["--threads", str(args.threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["growth_mb"]


def compare_processes(args) -> dict:
    """Aggregate tokens/s of 1 process x all cores' threads against one 1-thread process per
    core, each training its own model (as a zoo could), in alternating rounds."""
    cores = os.cpu_count() or 1

    def launch(n_procs: int, threads: int) -> float:
        cmd = [sys.executable, __file__, "--scale", args.scale, "--depths",
               str(args.depths[0]), "--child-steps", str(args.proc_steps), "--threads",
               str(threads), "--seed", str(args.seed)]
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
                 for _ in range(n_procs)]
        outs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
        # Each child's own timed loop, so start-up and warmup do not count.
        return sum(o["tokens"] / o["seconds"] for o in outs)

    layouts = {f"1 process x {cores} threads": (1, cores),
               f"{cores} processes x 1 thread": (cores, 1)}
    rates: dict[str, list[float]] = {name: [] for name in layouts}
    for _ in range(args.proc_rounds):
        for name, (n, t) in layouts.items():
            rates[name].append(launch(n, t))
    out = {name: statistics.median(r) for name, r in rates.items()}
    print(f"aggregate training tokens/s on {cores} cores ({args.proc_steps} steps of "
          f"{model_name(args.depths[0], 'solu_ln')} per process, median of "
          f"{args.proc_rounds} rounds):")
    for name, rate in out.items():
        print(f"  {name:<24} {rate:>9,.0f} tokens/s")
    first, second = out.values()
    print(f"  -> {second / first:.2f}x for one single-threaded process per core")
    return {"layouts": out, "per_core_processes_gain": second / first}


# --- main ----------------------------------------------------------------------------------------
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
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                   help="precision of the GELU/SoLU-LN comparison; auto (the zoo's default) "
                        "probes this machine (solu_repro.train.precision)")
    p.add_argument("--tl-depths", type=int, nargs="*", default=[1],
                   help="depths of the SoLU-LN model timed against TransformerLens (none: "
                        "skip; needs the interop extra)")
    p.add_argument("--tl-rounds", type=int, default=5,
                   help="interleaved rounds of the TransformerLens comparison")
    p.add_argument("--compile", action="store_true",
                   help="also time the default step under torch.compile (compile time too)")
    p.add_argument("--processes", action="store_true",
                   help="also compare 1 process on every core with one 1-thread process per "
                        "core (CPU)")
    p.add_argument("--proc-steps", type=int, default=8, help="timed steps per child process")
    p.add_argument("--proc-rounds", type=int, default=2)
    p.add_argument("--child-steps", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--memory-model", default=None, help=argparse.SUPPRESS)
    p.add_argument("--memory-kind", choices=STEP_KINDS, default=None, help=argparse.SUPPRESS)
    p.add_argument("--tl-worker", choices=("fp32", "bf16"), default=None, help=argparse.SUPPRESS)
    p.add_argument("--worker-config", default=None, help=argparse.SUPPRESS)
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
    for name in ("rounds", "steps_per_round", "act_rounds", "act_steps_per_round",
                 "tl_rounds", "proc_steps", "proc_rounds"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.threads is not None and args.threads < 1:
        p.error("--threads must be >= 1")
    if args.warmup < 0:
        p.error("--warmup must be >= 0")
    depths = SCALES[args.scale].depths
    args.depths = args.depths or list(depths)
    bad = [d for d in args.depths + args.tl_depths if d not in depths]
    if bad:
        p.error(f"depth(s) {bad} are not in the {args.scale} zoo (depths {list(depths)})")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.child_steps is not None:
        child_steps(args)
        return {}
    if args.memory_model is not None:
        child_memory(args)
        return {}
    if args.tl_worker is not None:
        tl_worker(args)
        return {}
    device = resolve_device(args.device)
    configs = zoo_configs(args.scale)
    s = SCALES[args.scale]
    if args.scale == "gpu" and device.type != "cuda":
        print("warning: gpu-scale shapes on a CPU will be extremely slow", file=sys.stderr)
    print(f"Training throughput  scale={args.scale}  device={device}  torch={torch.__version__}"
          f"  threads={torch.get_num_threads()}  kernels={torch.backends.cpu.get_cpu_capability()}"
          f"  ({platform.processor() or platform.machine()}, {os.cpu_count()} cpus, load avg "
          f"{os.getloadavg()[0]:.1f})")
    print()
    vs_tl = []
    try:
        import transformer_lens  # noqa: F401  (only: is it installed?)
    except ImportError:
        print("TransformerLens is not installed, so there is no ratio to it: "
              "pip install -e '.[interop]'\n")
        args.tl_depths = []
    for depth in args.tl_depths:
        cfg = configs[model_name(depth, "solu_ln")].replace(device=device.type)
        vs_tl.append(compare_with_transformer_lens(cfg, device, args))
        print()
    compiled = None
    if args.compile:
        cfg = configs[model_name(args.depths[0], "solu_ln")].replace(device=device.type)
        t0 = time.perf_counter()
        comp = make_train_step(cfg.replace(compile=True), device, args.seed)
        comp()
        compile_s = time.perf_counter() - t0
        smp = interleave({"eager": make_train_step(cfg, device, args.seed), "compiled": comp},
                         device, args.tl_rounds, 1, args.warmup)
        r = ratio_stats(smp["compiled"], smp["eager"])
        compiled = {"model": cfg.name, "compile_and_first_step_s": compile_s,
                    "eager_median_s": smp["eager"].median,
                    "compiled_median_s": smp["compiled"].median, "speedup": r["ratio"],
                    "speedup_ci90": [r["ci90_lo"], r["ci90_hi"]]}
        print(f"torch.compile, {cfg.name}: compile + first step {compile_s:.0f} s; eager "
              f"{smp['eager'].median * 1e3:.0f} ms, compiled {smp['compiled'].median * 1e3:.0f}"
              f" ms per step -> {r['ratio']:.2f}x (90% CI {r['ci90_lo']:.2f}-"
              f"{r['ci90_hi']:.2f})")
        print()
    processes = compare_processes(args) if args.processes and device.type == "cpu" else None
    if processes:
        print()

    def cfg_for(depth: int, act: str) -> TrainConfig:
        return configs[model_name(depth, act)].replace(
            precision=args.precision, device=device.type)

    any_cfg = cfg_for(args.depths[0], "gelu")
    tokens_per_step = any_cfg.tokens_per_step
    print(f"SoLU-LN vs GELU training step, precision {args.precision} "
          f"({precision_mod.choose(any_cfg, device)})")
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
        "transformer_lens": vs_tl, "compile": compiled, "processes": processes,
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
