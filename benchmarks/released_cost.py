"""What analysing a released model costs on this machine, measured on a full-size stand-in.

The released models cannot be downloaded here, and their cost does not depend on their
weights: this builds a random-weight model of a released model's shape (``--shape``: the
1-layer C4 models, d_model 512, 2,048 neurons, a 1,024-token context, 48,262-token
vocabulary; or the 4-layer ones), saves it in the released layout (``config.json`` and
``*final.pth``, with the cpu zoo's tokenizer standing in for the model's own, whose text gives
more tokens per character), and runs what ``solu-repro score --model <dir>`` runs, timing each
stage: the corpus tokenised with the model's tokenizer, the harvest of the validation split,
the judge (harvest of the held-out rows, explanations, full spectrum), and each null control
(rotated basis, untrained model; chapter 4 scores them all). Beside it, the same stages for a
stand-in of the cpu zoo's 1-layer SoLU-LN model's shape on the same corpus, in the same run,
so the ratio released / zoo is read on the same machine at the same time. Both read the cpu
corpus's text in its tokenizer (vocabulary 2,048, built first if missing).

Usage:
    python benchmarks/released_cost.py --threads 1                 # 1-layer shape, default corpus
    python benchmarks/released_cost.py --shape 4l --max-chars 2000000
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

SHAPES = {
    "1l": dict(n_layers=1, d_model=512, n_heads=8, d_head=64, d_mlp=2048, n_ctx=1024,
               d_vocab=48262),
    "4l": dict(n_layers=4, d_model=512, n_heads=8, d_head=64, d_mlp=2048, n_ctx=1024,
               d_vocab=48262),
}


def stand_in(directory: Path, shape: dict, tokenizer_file: Path) -> Path:
    """A random SoLU-LN model of ``shape``, saved in the released layout."""
    from solu_repro.interop import to_hooked_transformer
    from solu_repro.model import ModelConfig, Transformer

    cfg = ModelConfig(**shape, act_fn="solu_ln", pos_embed="learned")
    ht = to_hooked_transformer(Transformer(cfg))
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(
        {**shape, "act_fn": "solu_ln", "attn_only": False, "normalization": "LN",
         "tokenizer_name": None}))
    torch.save(ht.state_dict(), directory / "standin_final.pth")
    (directory / "tokenizer.json").write_bytes(tokenizer_file.read_bytes())
    return directory


def stages(run, data_dir: Path | None) -> dict[str, float]:
    from solu_repro.interp.controls import score_control
    from solu_repro.interp.harvest import harvest_run
    from solu_repro.interp.score import score_run

    out = {}
    t = time.perf_counter()
    corpus = run.corpus(data_dir)
    out["corpus"] = time.perf_counter() - t
    out["val_tokens"] = len(corpus.split("val"))
    for name, fn in (("harvest", lambda: harvest_run(run, progress=False, data_dir=data_dir)),
                     ("score", lambda: score_run(run, progress=False, data_dir=data_dir)),
                     ("rotated", lambda: score_control(run, "rotated", progress=False,
                                                       data_dir=data_dir)),
                     ("random_init", lambda: score_control(run, "random_init", progress=False,
                                                           data_dir=data_dir))):
        t = time.perf_counter()
        fn()
        out[name] = time.perf_counter() - t
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shape", choices=sorted(SHAPES), default="1l")
    p.add_argument("--sources", nargs="+", default=["default"])
    p.add_argument("--max-chars", type=int, default=None,
                   help="cap each source of the released model's corpus (default: all of it)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from solu_repro.data import build_dataset
    from solu_repro.pretrained import published_run
    from solu_repro.zoo import SCALES, zoo_config

    zoo = zoo_config("1L-solu_ln", "cpu").model
    zoo_shape = {k: getattr(zoo, k) for k in SHAPES["1l"]}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        corpus = build_dataset(SCALES["cpu"].data, None, progress=False)  # $SOLU_DATA_DIR
        tokenizer = corpus.path / "tokenizer.json"
        runs = {}
        for label, shape in (("released", SHAPES[args.shape]), ("zoo", zoo_shape)):
            directory = stand_in(tmp / label, shape, tokenizer)
            runs[label] = published_run(str(directory), tmp / "runs", tuple(args.sources),
                                        max_chars_per_source=args.max_chars)
        # The released stand-in first: it builds the corpus (the zoo stand-in reuses it).
        released_times = stages(runs["released"], tmp / "data")
        zoo_times = stages(runs["zoo"], tmp / "data")
    report = {"shape": args.shape, "released": released_times, "zoo_1L-solu_ln": zoo_times,
              "zoo_shape": zoo_shape}
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{'stage':12s} {'released ' + args.shape:>14s} {'zoo 1L':>10s} {'ratio':>7s}")
    print(f"corpus: {released_times['corpus']:.1f}s to tokenise (once; cached after)")
    for stage in ("harvest", "score", "rotated", "random_init"):
        r, z = released_times[stage], zoo_times[stage]
        print(f"{stage:12s} {r:13.1f}s {z:9.1f}s {r / z:7.1f}")
    total_r = sum(released_times[s] for s in ("harvest", "score", "rotated", "random_init"))
    total_z = sum(zoo_times[s] for s in ("harvest", "score", "rotated", "random_init"))
    print(f"{'all but corpus':12s} {total_r:13.1f}s {total_z:9.1f}s {total_r / total_z:7.1f}")
    print(f"validation tokens: released {released_times['val_tokens']}, "
          f"zoo {zoo_times['val_tokens']}")


if __name__ == "__main__":
    main()
