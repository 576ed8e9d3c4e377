"""The ``solu-repro`` command line: build data, train one run, train the model zoo, harvest and
score neurons, run the blinded human evaluation."""

from __future__ import annotations

import argparse
import errno
import os
import json
import sys
from pathlib import Path
from typing import Any, Sequence

import torch

from . import paths, zoo
from .train.checkpoint import CheckpointError
from .data import DataError, DataSpec, build_dataset, corpus_summary
from .interp.blind import BlindError, add_blind_arguments
from .interp.harvest import HarvestError
from .model import ConfigError
from .pretrained import PretrainedError
from .train import TrainConfig, TrainingDivergedError, repair, train
from .train.runtime import torch_threads

class NotWritableError(Exception):
    """A folder the command writes to cannot be written (checked before anything is done)."""


EXPECTED_ERRORS = (ConfigError, DataError, CheckpointError, TrainingDivergedError,
                   zoo.RunLockedError, FileNotFoundError, HarvestError, BlindError,
                   PretrainedError, zoo.ZooWorkerError, NotWritableError)

WRITE_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT}
"""OSErrors of the environment (a full disk, a read-only folder) that ``main`` reports in one
line, naming the file and the fix, instead of a traceback."""


def _add_dirs(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", type=Path, default=None,
                   help="corpus cache (default: $SOLU_DATA_DIR or ./data)")
    p.add_argument("--runs-dir", type=Path, default=None,
                   help="trained runs (default: $SOLU_RUNS_DIR or ./runs)")


def _workers(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return _positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"--workers must be 'auto' or a positive integer, "
                                         f"got {text!r}") from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {text!r}")
    return value


def _device(text: str) -> str:
    """A torch device this machine has: "cpu", "cuda", "cuda:1", "mps"."""
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a device: use cpu, cuda or "
                                         "cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise argparse.ArgumentTypeError(f"{text!r} asks for a CUDA GPU, but no CUDA GPU "
                                             "is visible to PyTorch on this machine; use "
                                             "--device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise argparse.ArgumentTypeError(
                f"{text!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s), "
                f"numbered from 0; use --device cuda:0")
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise argparse.ArgumentTypeError(f"{text!r}: no Apple GPU (MPS) is visible to "
                                             "PyTorch on this machine; use --device cpu")
    elif device.type != "cpu":
        raise argparse.ArgumentTypeError(f"{text!r} is not a device: use cpu, cuda or cuda:N")
    return text


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text  # a bare string such as solu_ln


def apply_overrides(d: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``--set key=value`` overrides (dotted keys reach into model./data.) to a config dict."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set expects KEY=VALUE (e.g. model.n_layers=2), got {item!r}")
        key, value = item.split("=", 1)
        target = d
        *parents, leaf = key.split(".")
        for parent in parents:
            if not isinstance(target.get(parent), dict):
                raise ConfigError(f"--set {key}: {parent!r} is not a config section "
                                  "(sections are 'model' and 'data')")
            target = target[parent]
        target[leaf] = _parse_value(value)
    return d


def load_train_config(config_or_name: str, scale: str, overrides: Sequence[str]) -> TrainConfig:
    """A config JSON file path, or the name of a zoo model at ``scale``."""
    path = Path(config_or_name)
    if path.suffix == ".json" or path.exists():
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        try:
            d = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path} is not valid JSON: {exc}") from exc
        if not isinstance(d, dict):
            raise ConfigError(f"{path} must hold a JSON object of TrainConfig fields, "
                              f"got {type(d).__name__}")
        d.setdefault("name", path.stem)
    else:
        d = zoo.zoo_config(config_or_name, scale).to_dict()
    return TrainConfig.from_dict(apply_overrides(d, overrides))


def cmd_data(args: argparse.Namespace) -> int:
    spec = zoo.SCALES[args.scale].data if args.scale else DataSpec()
    changes = {k: v for k, v in {"sources": tuple(args.sources) if args.sources else None,
                                 "vocab_size": args.vocab_size,
                                 "max_chars_per_source": args.max_chars_per_source}.items()
               if v is not None}
    spec = DataSpec.from_dict({**spec.to_dict(), **changes})
    corpus = build_dataset(spec, args.data_dir, progress=True, rebuild=args.rebuild)
    corpus.verify()  # every file against its SHA-256 in meta.json
    print(json.dumps(corpus_summary(corpus), indent=2, default=str))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    cfg = load_train_config(args.config, args.scale, args.set)
    if args.run_dir is not None:
        run_dir = args.run_dir
    elif Path(args.config).suffix == ".json":
        root = args.runs_dir or paths.runs_dir()
        run_dir = root / "custom" / f"{cfg.name}-{cfg.run_hash()}"
    else:
        run_dir = zoo.run_dir_for(cfg, args.scale, args.runs_dir)
    is_zoo_name = Path(args.config).suffix != ".json" and not Path(args.config).exists()
    # a zoo model trains on its scale's thread count, as `zoo` does, so it is the same run
    threads = zoo.SCALES[args.scale].train_threads if is_zoo_name else None
    print(f"run directory: {run_dir}", flush=True)
    with zoo.run_lock(run_dir, wait=False), torch_threads(threads):
        if args.retrain:
            result = repair(cfg, run_dir, progress=not args.quiet, data_dir=args.data_dir)
        else:
            result = train(cfg, run_dir, resume=args.resume, progress=not args.quiet,
                           data_dir=args.data_dir)
    print(json.dumps(result, indent=2))
    return 0


def cmd_zoo(args: argparse.Namespace) -> int:
    zoo.die_with_parent()  # a child of `zoo --workers N`: stopped when its parent dies
    configs = zoo.zoo_configs(args.scale)
    if args.list:
        for name, cfg in configs.items():
            run_dir = zoo.run_dir_for(cfg, args.scale, args.runs_dir)
            status = zoo.run_status(cfg, run_dir)
            fix = f"  (restore: {zoo.retrain_command(run_dir)})" if status == "damaged" else ""
            print(f"{name:12s} {status:8s} {run_dir}{fix}")
        return 0
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    workers = args.workers
    if workers == "auto":
        # One single-threaded process per core on a CPU (measured faster on 2 cores:
        # benchmarks/train_throughput.py --processes); one process on a GPU.
        workers = 1 if torch.cuda.is_available() else max(1, os.cpu_count() or 1)
    runs = zoo.train_zoo(args.scale, args.runs_dir, names=args.only or None,
                         progress=not args.quiet, data_dir=args.data_dir, workers=workers)
    print(f"\n{'model':12s} {'val loss':>9s}  per source")
    for name, run in runs.items():
        per_source = ", ".join(f"{k} {v:.3f}" for k, v in run.result["val_loss_per_source"].items())
        print(f"{name:12s} {run.result['val_loss']:9.4f}  {per_source}")
    return 0


def _interp_runs(args: argparse.Namespace) -> dict[str, Any]:
    """The runs a harvest/score command works on: the released models of ``--model``, or the
    zoo's (trained first if missing)."""
    if args.model:
        from .pretrained import published_run

        if args.only:
            raise ConfigError("--only picks zoo models and --model released ones: give one")
        runs = {}
        for source in args.model:
            run = published_run(source, args.runs_dir, tuple(args.sources))
            if not args.quiet:
                print(f"{run.name}: {run.released.directory} (tokenizer "
                      f"{run.released.tokenizer_file}); results in {run.run_dir}",
                      file=sys.stderr)
            run.corpus(args.data_dir, progress=not args.quiet)  # built once, before the tools
            runs[run.name] = run
        return runs
    return zoo.train_zoo(args.scale, args.runs_dir, names=args.only or None,
                         progress=not args.quiet, data_dir=args.data_dir)


def cmd_harvest(args: argparse.Namespace) -> int:
    from .interp.harvest import harvest_path, harvest_run

    for name, run in _interp_runs(args).items():
        h = harvest_run(run, k=args.k, batch_size=args.batch_size, device=args.device,
                        progress=not args.quiet, data_dir=args.data_dir, rebuild=args.rebuild)
        print(f"{name:12s} {h.n_layers} x {h.d_mlp} neurons, hooks {'/'.join(h.hooks)}, "
              f"{h.n_tokens} tokens -> {harvest_path(run, k=args.k)}")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from .interp.score import ScoreSettings, score_run

    settings = ScoreSettings(threshold=args.threshold, min_lift=args.min_lift, hook=args.hook,
                             fire_fraction=args.fire_fraction)
    results = {name: score_run(run, settings, batch_size=args.batch_size, device=args.device,
                               progress=not args.quiet, data_dir=args.data_dir,
                               rebuild=args.rebuild)
               for name, run in _interp_runs(args).items()}
    if args.json:
        print(json.dumps({name: s.by_layer() for name, s in results.items()}, indent=2))
        return 0
    print(f"\n{'model':12s} {'layer':>5s}  {'interpretable (top-20 rule)':>30s}  "
          f"{'full spectrum':>22s}")
    for name, s in results.items():
        for row in [{"layer": "all"}] + s.by_layer():
            layer = None if row["layer"] == "all" else row["layer"]
            top, spec = s.fraction_interpretable(layer), s.fraction_interpretable(layer, "spectrum")
            print(f"{name:12s} {str(row['layer']):>5s}  {top.successes:4d}/{top.n:<4d} "
                  f"{top.fraction:6.1%} [{top.lo:.2f}, {top.hi:.2f}]  "
                  f"{spec.fraction:6.1%} [{spec.lo:.2f}, {spec.hi:.2f}]")
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    from .pretrained import download

    for source in args.models:
        released = download(source, args.cache_dir)
        print(f"{released.name}: {released.directory}\n  weights {released.weights.name}, "
              f"tokenizer {released.tokenizer_file}")
    print("offline from now on, e.g. solu-repro score --model "
          f"{args.models[0] if args.models[0].startswith('tl:') else 'tl:' + args.models[0]}")
    return 0


def cmd_blind(args: argparse.Namespace) -> int:
    from .interp.blind import run_blind_cli

    return run_blind_cli(args)


def cmd_book(args: argparse.Namespace) -> int:
    from .book.build import BookBuildError, build_book

    if args.data_dir is not None:  # notebooks' kernels inherit the environment
        os.environ["SOLU_DATA_DIR"] = str(args.data_dir.resolve())
    try:
        report = build_book(args.scale, runs_dir=args.runs_dir, root=args.output,
                            force=args.force, html=not args.no_html, quiet=args.quiet)
    except BookBuildError as exc:
        print(f"solu-repro book: error: {exc}", file=sys.stderr)
        return 1
    if not args.quiet:  # each notebook, then the stages' times on one line
        print(report.summary())
    elif report.html_dir is not None:
        print(f"book: {report.html_dir / 'index.html'}")
    return 0


def cmd_features(args: argparse.Namespace) -> int:
    from .interp.sae import run_features_command  # SAELens is imported only when it trains

    return run_features_command(args)


def cmd_export(args: argparse.Namespace) -> int:
    from .export import (FORMATS, ExportError, default_output, export_neuron_json,
                         export_transformer_lens, resolve_run)
    from .interp.score import ScoreSettings

    if args.format not in FORMATS:  # here, not argparse's choices: one line, not the usage
        raise ExportError(f"unknown export format {args.format!r}: use one of "
                          f"{', '.join(FORMATS)}")
    run = resolve_run(args.run, args.scale, args.runs_dir, args.step)
    out = args.output if args.output is not None else default_output(run, args.format)
    problem = paths.writable_problem(out.parent)
    if problem is not None:
        raise NotWritableError(f"cannot write to {out.parent} ({problem}): pass --output DIR "
                               "with a folder you can write")
    if args.format == "transformer-lens":
        export_transformer_lens(run, out, force=args.force)
    else:
        settings = ScoreSettings(threshold=args.threshold, min_lift=args.min_lift,
                                 hook=args.hook, fire_fraction=args.fire_fraction)
        export_neuron_json(run, out, settings=settings, batch_size=args.batch_size,
                           device=args.device, progress=not args.quiet,
                           data_dir=args.data_dir, force=args.force)
    print(f"{run.name}: {args.format} -> {out}")
    return 0


def _add_interp_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scale", choices=sorted(zoo.SCALES), default="cpu")
    p.add_argument("--only", nargs="+", default=None, metavar="NAME",
                   help="only these zoo models (default: all; missing ones are trained first)")
    p.add_argument("--model", action="append", default=[], metavar="SOURCE",
                   help="a released model instead of the zoo: tl:solu-1l (a TransformerLens "
                        "alias or hub repo, from the local Hugging Face cache, offline) or a "
                        "directory in the released layout; repeat for several")
    p.add_argument("--sources", nargs="+", default=["default"], metavar="SOURCE",
                   help="with --model: the corpus, tokenised with the model's own tokenizer "
                        "(default: the embedded default corpus; or files:<glob>, hf:<name>)")
    p.add_argument("--batch-size", type=int, default=16, help="rows per forward pass")
    p.add_argument("--device", type=_device, default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--rebuild", action="store_true", help="recompute even if saved")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_dirs(p)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="solu-repro", description="Reproduce 'Softmax Linear Units' (Elhage et al., 2022).")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("data", help="build (or reuse) a tokenized corpus and print its summary")
    p.add_argument("--scale", choices=sorted(zoo.SCALES), default=None,
                   help="start from this scale's corpus (default: the embedded default corpus)")
    p.add_argument("--sources", nargs="+", default=None,
                   help="sources: sotu, python-stdlib, files:<glob>, hf:<name>[:split], "
                        "or a mixture name such as 'default'")
    p.add_argument("--vocab-size", type=int, default=None)
    p.add_argument("--max-chars-per-source", type=int, default=None)
    p.add_argument("--rebuild", action="store_true", help="rebuild even if cached")
    _add_dirs(p)
    p.set_defaults(func=cmd_data)

    p = sub.add_parser("train", help="train one run from a JSON config or a zoo model name")
    p.add_argument("config", help="a TrainConfig JSON file, or a zoo name such as 1L-solu_ln")
    p.add_argument("--scale", choices=sorted(zoo.SCALES), default="cpu",
                   help="zoo scale used when CONFIG is a model name (default: cpu)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field, e.g. --set max_steps=100 --set model.act_fn=gelu")
    p.add_argument("--run-dir", type=Path, default=None, help="where to write the run")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run from its newest checkpoint")
    p.add_argument("--retrain", action="store_true",
                   help="restore a run whose weights, snapshots or result.json are missing or "
                        "damaged: from its newest good checkpoint, else from scratch (same "
                        "run, same directory)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_dirs(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("zoo", help="train every missing model of a scale and print their losses")
    p.add_argument("--scale", choices=sorted(zoo.SCALES), default="cpu")
    p.add_argument("--only", nargs="+", default=None, metavar="NAME", help="train only these")
    p.add_argument("--list", action="store_true", help="list models and whether they are trained")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--workers", type=_workers, default="auto",
                   help="processes training models side by side (auto: one per CPU core, "
                        "1 with a GPU)")
    p.add_argument("--threads", type=_positive_int, default=None,
                   help="torch threads per process")
    _add_dirs(p)
    p.set_defaults(func=cmd_zoo)

    p = sub.add_parser("harvest", help="record every MLP neuron's top firings, activation-level "
                                       "samples and statistics on the validation split")
    _add_interp_args(p)
    p.add_argument("--k", type=int, default=20, help="top firings kept per neuron (paper: ~20)")
    p.set_defaults(func=cmd_harvest)

    p = sub.add_parser("score", help="automated interpretability score of every neuron "
                                     "(harvests first if needed)")
    _add_interp_args(p)
    p.add_argument("--threshold", type=float, default=0.8,
                   help="coverage of the top-20 firings needed (paper: 80%%)")
    p.add_argument("--min-lift", type=float, default=3.0,
                   help="an explanation must hold this many times more often in the top "
                        "firings than in text at large")
    p.add_argument("--fire-fraction", type=float, default=0.5,
                   help="full-spectrum view: a token fires the neuron above this fraction of its max")
    p.add_argument("--hook", choices=["mid", "post"], default="mid",
                   help="mid: before SoLU's extra LN (what the paper interprets); post: after")
    p.add_argument("--json", action="store_true", help="print per-layer results as JSON")
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("download", help="download released SoLU/GELU models and their "
                                        "tokenizer into the Hugging Face cache, once, with "
                                        "internet (then every command loads them offline)")
    p.add_argument("models", nargs="+", metavar="MODEL",
                   help="TransformerLens aliases or hub repos, e.g. tl:solu-1l tl:gelu-1l")
    p.add_argument("--cache-dir", type=Path, default=None,
                   help="Hugging Face cache (default: $HF_HUB_CACHE)")
    p.set_defaults(func=cmd_download)

    p = sub.add_parser("blind", help="the paper's blinded human evaluation (§6.1): judge "
                                     "neurons without knowing their model, then unblind")
    add_blind_arguments(p)
    p.set_defaults(func=cmd_blind)

    p = sub.add_parser("book", help="execute the notebooks at a scale with papermill and build "
                                    "the offline HTML book (_build/html)")
    p.add_argument("--scale", choices=sorted(zoo.SCALES), default="cpu")
    p.add_argument("--output", type=Path, default=None, metavar="DIR",
                   help="book root to build in (default: the checkout; executed notebooks go "
                        "to DIR/book/executed, the HTML to DIR/_build/html)")
    p.add_argument("--force", action="store_true",
                   help="re-execute every notebook, even those whose inputs did not change")
    p.add_argument("--no-html", action="store_true", help="execute the notebooks only")
    p.add_argument("--quiet", action="store_true",
                   help="show Jupyter Book's output only if the build fails")
    _add_dirs(p)
    p.set_defaults(func=cmd_book)

    p = sub.add_parser("export", help="write a trained run for other tools: transformer-lens "
                                      "(TransformerLens config.json + model.safetensors) or "
                                      "neuron-json (every neuron's top examples, explanation "
                                      "and scores; README, Export)")
    p.add_argument("run", metavar="RUN", help="a zoo model name at --scale (e.g. 1L-solu_ln), "
                                              "or a run directory written by `train`")
    p.add_argument("--format", required=True, metavar="{transformer-lens,neuron-json}",
                   help="what to write (README, Export)")
    p.add_argument("--output", type=Path, default=None, metavar="DIR",
                   help="a new or empty folder (default: exports/SCALE/RUN-FORMAT)")
    p.add_argument("--force", action="store_true",
                   help="replace an earlier export in DIR (never a folder of other files)")
    p.add_argument("--scale", choices=sorted(zoo.SCALES), default="cpu")
    p.add_argument("--step", type=int, default=None,
                   help="a snapshot step of the run (default: its final weights)")
    p.add_argument("--hook", choices=["mid", "post"], default="mid",
                   help="neuron-json: mid (before SoLU's extra LN, what the paper interprets) "
                        "or post")
    p.add_argument("--threshold", type=float, default=0.8,
                   help="neuron-json: the judge's coverage rule, as in `score`")
    p.add_argument("--min-lift", type=float, default=3.0, help="neuron-json: as in `score`")
    p.add_argument("--fire-fraction", type=float, default=0.5,
                   help="neuron-json: as in `score`")
    p.add_argument("--batch-size", type=_positive_int, default=16,
                   help="rows per forward pass")
    p.add_argument("--device", type=_device, default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_dirs(p)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("features", help="train and cache sparse autoencoders (SAELens TopK "
                                        "SAEs) on the MLP activations of the zoo's 1-layer "
                                        "GELU and SoLU-LN models (chapter 8)")
    p.add_argument("--scale", choices=sorted(zoo.SCALES), default="cpu")
    p.add_argument("--only", nargs="+", default=None, metavar="NAME",
                   help="only these zoo models (default: every seed of the 1L GELU and "
                        "SoLU-LN models; missing ones are trained first)")
    p.add_argument("--hook", choices=["mid", "post"], action="append", default=None,
                   help="the hooks (default: mid and, with SoLU's extra LN, post)")
    p.add_argument("--expansion", type=_positive_int, default=4,
                   help="d_sae = expansion x d_mlp (default 4)")
    p.add_argument("--k", type=_positive_int, default=None,
                   help="features active per token (default 32)")
    p.add_argument("--train-tokens", type=_positive_int, default=None,
                   help="training tokens (default 131,072; 16,384 at the tiny scales)")
    p.add_argument("--seed", type=_non_negative_int, default=0,
                   help="the SAE's seed (default 0)")
    p.add_argument("--device", type=_device, default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--rebuild", action="store_true", help="train again even if saved")
    p.add_argument("--json", action="store_true", help="print the reports as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_dirs(p)
    p.set_defaults(func=cmd_features)
    return parser


def _output_dirs(args: argparse.Namespace) -> list[tuple[Path, str]]:
    """The folders a command will write to, each with the option that chooses another."""
    if args.command == "data":
        spec_dir = args.data_dir if args.data_dir is not None else paths.data_dir()
        return [(spec_dir, "--data-dir")]
    if args.command == "train" and args.run_dir is not None:
        return [(args.run_dir.parent, "--run-dir")]
    if args.command in ("train", "zoo", "harvest", "score", "book", "features"):
        if args.command == "zoo" and args.list:
            return []
        root = args.runs_dir if args.runs_dir is not None else paths.runs_dir()
        return [(root, "--runs-dir")]
    return []


def check_writable(args: argparse.Namespace) -> None:
    """``NotWritableError`` naming the folder and the fix when a folder the command writes to
    cannot be written: before any work, not after an hour of it."""
    for folder, option in _output_dirs(args):
        problem = paths.writable_problem(folder)
        if problem is not None:
            env = {"--runs-dir": " (or set SOLU_RUNS_DIR=DIR)",
                   "--data-dir": " (or set SOLU_DATA_DIR=DIR)"}.get(option, "")
            full = "space" in problem or "quota" in problem
            fix = (f"free space on that disk, or pass {option} DIR on another disk{env}" if full
                   else f"pass {option} DIR with a folder you can write{env}")
            raise NotWritableError(f"cannot write to {folder} ({problem}): {fix}")


def _written_folders(args: argparse.Namespace) -> list[tuple[Path, str]]:
    """Every folder a command may write to (its output and the corpus cache), with the option
    that chooses another."""
    folders = list(_output_dirs(args))
    if args.command in ("train", "zoo", "harvest", "score", "book", "features"):
        data = getattr(args, "data_dir", None)
        folders.append((data if data is not None else paths.data_dir(), "--data-dir"))
    return folders


def _write_failure(args: argparse.Namespace, exc: OSError) -> str:
    """One line for an OSError of the environment: the file (or, when the system did not say
    which, the folder), the problem and the fix."""
    import shutil

    folders = _written_folders(args) or [(Path.cwd(), "")]
    option = folders[0][1]
    if exc.filename:
        what, folder = f"cannot write {exc.filename}", Path(exc.filename).parent
        for root, flag in folders:  # the option whose folder holds the file
            try:
                if Path(exc.filename).resolve().is_relative_to(Path(root).resolve()):
                    option = flag
                    break
            except (OSError, ValueError):
                pass
    else:  # a failed write() names no file: the folder on the fullest disk
        def free(item: tuple[Path, str]) -> int:
            try:
                return shutil.disk_usage(item[0]).free
            except OSError:
                return 1 << 62
        folder, option = min(folders, key=free) if exc.errno in (errno.ENOSPC, errno.EDQUOT) \
            else folders[0]
        what = f"cannot write under {folder}"
    other = f" or pass {option} DIR" if option else ""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        fix = f"free space on that disk (`df -h {folder}`){other} on another disk"
    elif exc.errno == errno.EROFS:
        fix = f"pass {option} DIR on a writable disk" if option else "use a writable disk"
    else:
        fix = f"fix its permissions (`chmod -R u+w {folder}`){other} with a folder you can write"
    return f"{what}: {exc.strerror or exc}; {fix}"


def _disk_error(args: argparse.Namespace, exc: BaseException) -> OSError | None:
    """The OSError of a full, read-only or forbidden disk behind ``exc``, if that is what it
    is: an OSError (or one it was raised from), safetensors' "(os error 28)", or PyTorch's
    stream writer failing while a folder the command writes to has almost no space left."""
    import re
    import shutil

    seen = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in WRITE_ERRNOS:
            return seen
        seen = seen.__cause__ or seen.__context__
    text = str(exc)
    found = re.search(r"\(os error (\d+)\)", text)
    if type(exc).__name__ == "SafetensorError" and found and int(found[1]) in WRITE_ERRNOS:
        code = int(found[1])
        return OSError(code, os.strerror(code))
    if isinstance(exc, RuntimeError) and "inline_container.cc" in text:  # torch.save
        for folder, _ in _written_folders(args):
            try:
                if shutil.disk_usage(folder).free < 64 << 20:
                    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            except OSError:
                pass
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        check_writable(args)
        return args.func(args)
    except EXPECTED_ERRORS as exc:
        print(f"solu-repro {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # a full or read-only disk, however the library reports it
        disk = _disk_error(args, exc)
        if disk is None:
            raise
        print(f"solu-repro {args.command}: error: {_write_failure(args, disk)}",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; `solu-repro zoo` resumes by itself when rerun, `solu-repro train` "
              "with --resume", file=sys.stderr)
        return 130
    finally:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():  # under torchrun
            dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
