"""The GPU path, checked in one short run (for a machine with a CUDA GPU; about 8 minutes).

1. Training throughput at the gpu zoo's shapes (1L SoLU-LN), bf16 autocast, eager and under
   torch.compile, against TransformerLens of the same shape; MFU against the bf16 matmul peak
   measured in the same run (``train_throughput.compare_with_transformer_lens``).
2. The SoLU-LN / GELU step ratio under torch.compile (paper: under 1%).
3. A 50-step training run of the gpu-scale 1L SoLU-LN model on the local default corpus
   (no hub access: the Pile is swapped for the embedded corpus), through ``train()``.
4. A harvest of that model on its validation rows, timed beside its training tokens/s.

Everything it measures is printed and written to ``--out`` as JSON. On a CPU, ``--scale tiny``
runs the same script in seconds (that is how it is tested here; the numbers mean nothing).

Usage (on the GPU machine):
    python benchmarks/gpu_check.py --out gpu_check.json
    python benchmarks/gpu_check.py --scale tiny --device cpu --steps 4   # dry run
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_throughput  # noqa: E402

from solu_repro.data import DataSpec, build_dataset  # noqa: E402
from solu_repro.interp.harvest import harvest  # noqa: E402
from solu_repro.speed import compare_train_steps  # noqa: E402
from solu_repro.train import train  # noqa: E402
from solu_repro.zoo import SCALES, zoo_configs  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", choices=sorted(SCALES), default="gpu")
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    p.add_argument("--steps", type=int, default=50, help="steps of the training smoke test")
    p.add_argument("--harvest-rows", type=int, default=256)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    device = train_throughput.resolve_device(args.device)
    report: dict = {"device": str(device), "torch": torch.__version__,
                    "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None}
    # The local corpus at the scale's vocabulary is slow to build; the default vocabulary is
    # what a tokenizer trained on 25 MB supports anyway.
    data = DataSpec() if args.scale == "gpu" else SCALES[args.scale].data
    configs = {name: cfg.replace(device=device.type)
               for name, cfg in zoo_configs(args.scale, data=data).items()}
    t_start = time.perf_counter()

    # 1. throughput against TransformerLens, eager and compiled
    bench_args = argparse.Namespace(seed=0, warmup=2, tl_rounds=args.rounds, threads=None,
                                    scale=args.scale)
    cfg = configs["1L-solu_ln"]
    report["vs_transformer_lens"] = train_throughput.compare_with_transformer_lens(
        cfg, device, bench_args, memory=False)
    if not args.no_compile:
        t0 = time.perf_counter()
        compiled = train_throughput.make_step("default", cfg.replace(compile=True), device, 0)
        compiled()
        compile_s = time.perf_counter() - t0
        eager = train_throughput.make_step("default", cfg, device, 0)
        smp = train_throughput.interleave({"eager": eager, "compiled": compiled}, device,
                                          args.rounds, 1, 2)
        report["compile"] = {"compile_and_first_step_s": compile_s,
                             "eager_s": smp["eager"].median,
                             "compiled_s": smp["compiled"].median,
                             "compiled_tokens_per_s": cfg.tokens_per_step / smp["compiled"].median}
        print(f"torch.compile: {compile_s:.0f} s to compile; eager {smp['eager'].median * 1e3:.1f}"
              f" ms, compiled {smp['compiled'].median * 1e3:.1f} ms per step", flush=True)

    # 2. SoLU-LN / GELU, compiled
    compile_flag = not args.no_compile
    ratio = compare_train_steps(configs["1L-gelu"].replace(compile=compile_flag),
                                configs["1L-solu_ln"].replace(compile=compile_flag),
                                device=device, rounds=args.rounds, warmup=2)
    report["solu_ln_over_gelu"] = {"ratio": ratio.ratio, "ci90": list(ratio.ci90),
                                   "compiled": compile_flag}
    print(ratio, flush=True)

    # 3. training smoke test, 4. harvest
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        smoke = configs["1L-solu_ln"].replace(max_steps=args.steps, warmup_steps=5,
                                              snapshot_steps=(), eval_every=0,
                                              checkpoint_every=args.steps // 2 or 1,
                                              final_eval_rows=64)
        result = train(smoke, run_dir, progress=False)
        report["train_smoke"] = {k: result[k] for k in ("step", "tokens", "train_seconds",
                                                        "val_loss", "precision")}
        report["train_smoke"]["tokens_per_s"] = result["tokens"] / result["train_seconds"]
        print(f"train smoke: {result['step']} steps, val loss {result['val_loss']:.3f}, "
              f"{report['train_smoke']['tokens_per_s']:,.0f} tokens/s", flush=True)
        from solu_repro.train.checkpoint import load_weights

        model = load_weights(run_dir / "model.safetensors", device)
        corpus = build_dataset(smoke.data)
        t0 = time.perf_counter()
        h = harvest(model, corpus.split("val"), smoke.model.n_ctx, corpus.bos_id,
                    max_rows=args.harvest_rows, device=device, progress=False)
        seconds = time.perf_counter() - t0
        report["harvest"] = {"tokens": h.n_tokens, "seconds": seconds,
                             "tokens_per_s": h.n_tokens / seconds,
                             "over_training": h.n_tokens / seconds
                             / report["train_smoke"]["tokens_per_s"]}
        print(f"harvest: {h.n_tokens:,} tokens in {seconds:.1f} s "
              f"({report['harvest']['over_training']:.1f}x the training tokens/s)", flush=True)
    report["total_s"] = time.perf_counter() - t_start
    print("JSON " + json.dumps(report, sort_keys=True))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2, sort_keys=True))
    return report


if __name__ == "__main__":
    main()
