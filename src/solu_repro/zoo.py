"""The model zoo: the one place that defines which models the book trains, per scale.

Scales:
    tiny: for tests and nbval; every model trains in seconds on a laptop CPU.
    tiny-pair: the tiny shapes with the default book's composition (the 1-layer pair only).
    cpu:  the default book: 3 seeds each of 1-layer GELU and SoLU-LN (the Figure 4 pair),
          every model on 5.73 M tokens, its weights kept at three points on the way; the README shows the arithmetic of what that costs on 2 CPU cores.
    cpu-full: the same, plus 2 seeds each of the 1-layer ablations (GELU-LN, SoLU without
          LN, blocked SoLU-LN with 4 blocks) and one 2- and 4-layer GELU/SoLU-LN pair, all
          on the same 5.73 M tokens (about 2.7x the default zoo's training).
    gpu:  wider, deeper, many more tokens, for one H100-class GPU, on the Pile streamed from
          the Hugging Face hub (needs internet), or on any corpus via ``data=``.

Names: ``<depth>L-<act>[_b<blocks>][-s<seed>]``, e.g. "1L-gelu", "1L-solu_ln-s2",
"1L-solu_ln_b4-s1". Seed 0 has no suffix, so the seed-0 zoo keeps the names it always had.
A seed sets both the init and the data order; the GELU and SoLU models of one depth and seed
are a matched pair.

Matched GELU/SoLU models of the same depth share their init seed and data order (paper §5:
the SoLU models "differ only in using the SoLU activation function"). Runs are stored under
``runs_dir/<scale>/<name>-<hash>``; a finished run is never retrained and a file lock stops
two processes from training the same run at once.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import fcntl
import os
import shlex
import signal
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

from . import paths
from .train.checkpoint import CheckpointError, add_repair_command, load_weights
from tokenizers import Tokenizer

from .data import DataError, DataSpec, TokenizedCorpus, load_tokenizer, open_dataset
from .data.build import name_spec
from .model import ConfigError, ModelConfig, Transformer
from .train.runtime import torch_threads
from .train import (TrainConfig, check_finished, read_result, read_snapshot, snapshot_path,
                    train)

PILE = "hf:monology/pile-uncopyrighted:train"


@dataclass(frozen=True)
class Scale:
    """Shared shape and budget of every model of one scale."""

    data: DataSpec
    d_model: int
    n_heads: int
    d_head: int
    d_mlp: int
    n_ctx: int
    depths: tuple[int, ...]
    """Depths of the GELU/SoLU-LN pairs (seed 0); the smallest also gets the ablations."""
    batch_size: int
    max_steps: int
    warmup_steps: int
    eval_every: int
    eval_rows: int
    final_eval_rows: int | None
    checkpoint_every: int
    log_every: int = 10
    precision: str = "auto"
    """``TrainConfig.precision`` of every model (see ``solu_repro.train.precision``)."""
    pair_seeds: int = 1
    """Seeds of the smallest depth's GELU/SoLU-LN pair (the Figure 4 pair)."""
    ablation_seeds: int = 1
    """Seeds of each ablation (``ABLATIONS`` and the blocked SoLU-LN)."""
    blocks: int = 0
    """solu_blocks of the blocked SoLU-LN ablation (0: none at this scale)."""
    deep_warmup_steps: int | None = None
    """warmup of the deeper pairs (None: ``warmup_steps``)."""
    lr_embed: float | None = None
    """``TrainConfig.lr_embed`` of every model (None: its default, 1e-3). See ``CPU_LR_EMBED``."""
    snapshot_steps: tuple[int, ...] = ()
    """Steps at which every model of the smallest depth keeps its weights
    (``TrainConfig.snapshot_steps``): the points of the book's metrics over training."""
    runs_under: str | None = None
    """Keep this scale's runs under another scale's folder (None: its own), so a scale that
    extends another reuses the runs they share (same config, same hash)."""
    features: bool = True
    """Whether the book trains sparse dictionaries (SAEs) on this scale's 1-layer pair and
    reads them with every instrument (chapter 8, ``solu_repro.interp.sae``). Off at ``cpu``: the
    default book has no room for them on the slowest CPU seen (README, "Budget"); the
    ``cpu-features`` scale is the same zoo with them."""
    train_threads: int | None = None
    """Torch threads while training (None: torch's default). Tiny models are trained on one
    thread, so that one machine trains the same tiny zoo every time: their training is chaotic
    enough that 1 vs 2 threads changes the final loss by ~0.03 (another CPU's kernels move it
    by up to ~0.14, which is why the notebooks' tests pin properties of tiny models, never
    their losses)."""


DEEP_WARMUP = 70
"""Warmup of the cpu zoo's 2- and 4-layer models (twice the 1-layer models'), at the default
lr. With lr 2e-3 instead (and 80 steps of warmup, 400 steps) the 2-layer GELU's lead over the
1-layer one fell from 0.24 nats (an earlier zoo at lr 4e-3) to 0.04, and the 4-layer GELU did
not beat the 1-layer one; chapter 3 checks whether depth helps."""

CPU_LR_EMBED = 4e-3
"""lr of embeddings, biases and LayerNorm parameters at the cpu scales: the hidden lr at d_model
128 (2e-3 / (128 / 256)). At the default 1e-3 (a quarter of the hidden lr at this width) the
model's init seed decided its loss: 1L GELU at 200 steps ended at 5.08, 4.63, 4.83 and 4.68
nats for init seeds 0-3 (seed 0 was the zoo's 0.3-nat outlier), and at 4.53, 4.46, 4.46 and
4.44 with the embeddings at 4e-3 (measured in issue 22; `benchmarks/seed_spread.py`
repeats it)."""

CPU_STEPS = 1400
"""Steps of the cpu scales' models: 5.73 M tokens, four times the 1.43 M (350 steps) of the
zoo before issue 22."""

CPU_SNAPSHOTS = (50, 350, 700)
"""Steps at which the 1-layer cpu models keep their weights: 0.20 M tokens (early), 1.43 M (the
old budget), 2.87 M and the end at 5.73 M, the four points of chapter 4's metrics over
training. A fifth point (130 steps, 0.53 M) cost about 2 minutes of analysis on this build's
CPU and 4 on the slowest seen, which the 45-minute budget did not have (README, "Budget")."""

_CPU_SHAPE = dict(data=DataSpec(vocab_size=2048), d_model=128, n_heads=2, d_head=64, d_mlp=512,
                  n_ctx=256, batch_size=16, max_steps=CPU_STEPS, warmup_steps=35,
                  eval_every=100, eval_rows=32, final_eval_rows=None, checkpoint_every=50,
                  lr_embed=CPU_LR_EMBED, snapshot_steps=CPU_SNAPSHOTS)

_TINY = Scale(data=DataSpec(max_chars_per_source=300_000, vocab_size=1024),
              d_model=32, n_heads=2, d_head=16, d_mlp=128, n_ctx=64, depths=(1, 2, 4),
              batch_size=8, max_steps=120, warmup_steps=10, eval_every=40, eval_rows=16,
              final_eval_rows=64, checkpoint_every=40, log_every=10, train_threads=1,
              pair_seeds=2, ablation_seeds=1, blocks=4, snapshot_steps=(15, 40),
              # fp32, not a probe: at these shapes bf16 hardly pays, and a probe near its
              # margin could flip between runs, while the tests need one machine to train
              # the same tiny zoo every time.
              precision="fp32")

SCALES: dict[str, Scale] = {
    "tiny": _TINY,
    # The default book's composition at the tiny shapes (the pair only, no ablations or deeper
    # models), so the tests run every chapter the way the cpu book does.
    "tiny-pair": dataclasses.replace(_TINY, depths=(1,), ablation_seeds=0, blocks=0,
                                     runs_under="tiny"),
    # The default book (issue 22): the Figure 4 pair only, 3 seeds each at 5.73 M tokens. The
    # README shows the arithmetic on the slowest CPU seen; what no longer fits is in cpu-full.
    "cpu": Scale(**_CPU_SHAPE, depths=(1,), pair_seeds=3, ablation_seeds=0, blocks=0,
                 features=False),
    # The cpu book and chapter 8's sparse dictionaries (9 SAEs on the same 6 runs, each read by
    # the judge, the rotation-fair score and the probes): README, "Budget", has its time.
    "cpu-features": Scale(**_CPU_SHAPE, depths=(1,), pair_seeds=3, ablation_seeds=0,
                          blocks=0, runs_under="cpu"),
    # The same chapters with everything at the same 5.73 M tokens: the pair (3 seeds), 2 seeds
    # each of GELU-LN, SoLU without LN and the 4-block SoLU-LN, and one 2L and 4L pair.
    "cpu-full": Scale(**_CPU_SHAPE, depths=(1, 2, 4), pair_seeds=3, ablation_seeds=2,
                      blocks=4, deep_warmup_steps=DEEP_WARMUP, runs_under="cpu"),
    # ~1B tokens per model on the Pile (262k tokens per step); ~1.3M Pile documents are
    # ~1.3B tokens, so the budget is about one epoch.
    "gpu": Scale(data=DataSpec(sources=(PILE,), vocab_size=32768, max_docs_per_source=1_300_000),
                 d_model=512, n_heads=8, d_head=64, d_mlp=2048, n_ctx=1024,
                 depths=(1, 2, 4, 8), batch_size=256, max_steps=4000, warmup_steps=200,
                 eval_every=500, eval_rows=256, final_eval_rows=2048, checkpoint_every=500),
}

ABLATIONS = ("solu", "gelu_ln")
"""1-layer ablations: SoLU without its LayerNorm (§4.3) and the LN-only control."""


def _check_scale(scale: str) -> Scale:
    if scale not in SCALES:
        raise ConfigError(f"unknown scale {scale!r}: use one of {sorted(SCALES)}")
    return SCALES[scale]


def model_name(n_layers: int, act_fn: str, blocks: int = 1, seed: int = 0) -> str:
    """"1L-gelu", "1L-solu_ln_b4" (4 blocks), "1L-gelu-s2" (seed 2)."""
    name = f"{n_layers}L-{act_fn}" + (f"_b{blocks}" if blocks > 1 else "")
    return name + (f"-s{seed}" if seed else "")


def parse_name(name: str) -> tuple[int, str, int, int]:
    """``(depth, act_fn, blocks, seed)`` of a zoo name ("1L-solu_ln_b4-s1" -> (1, "solu_ln", 4,
    1)); ``ConfigError`` for anything else."""
    try:
        depth_part, rest = name.split("L-", 1)
        variant, _, seed_part = rest.partition("-s")
        act, _, blocks_part = variant.partition("_b")
        depth, blocks = int(depth_part), int(blocks_part or 1)
        seed = int(seed_part) if seed_part else 0
    except ValueError:
        raise ConfigError(f"{name!r} is not a zoo model name (like '1L-gelu' or "
                          "'1L-solu_ln-s2')") from None
    if not act or not act.replace("_", "").isalpha() or model_name(depth, act, blocks,
                                                                    seed) != name:
        raise ConfigError(f"{name!r} is not a zoo model name (like '1L-gelu' or '1L-solu_ln-s2')")
    return depth, act, blocks, seed


def variant_of(name: str) -> str:
    """The model without its seed: "1L-solu_ln-s2" -> "1L-solu_ln"."""
    depth, act, blocks, _ = parse_name(name)
    return model_name(depth, act, blocks)


def seed_of(name: str) -> int:
    return parse_name(name)[3]


def act_of(name: str) -> str:
    """The variant of a zoo model name without depth and seed: "2L-solu_ln" -> "solu_ln",
    "1L-gelu-s2" -> "gelu", "1L-solu_ln_b4-s1" -> "solu_ln_b4" (blocked)."""
    return name.split("-")[1]


def depth_of(name: str) -> int:
    """The depth of a zoo model name ("2L-solu_ln" -> 2)."""
    return int(name.split("L-", 1)[0])


ACT_LABELS = {
    "gelu": "GELU baseline",
    "solu_ln": "SoLU + LN",
    "gelu_ln": "GELU + LN (LN-only ablation)",
    "solu": "SoLU without LN",
    "solu_ln_b4": "SoLU + LN, 4 blocks",
}
"""How the book names each variant, in legends, tables and claim sentences alike."""


def label(name_or_act: str) -> str:
    """A reader's name: "SoLU + LN" for an activation, "2L SoLU + LN" for a zoo model,
    "1L GELU baseline (seed 2)" for another seed."""
    if "-" in name_or_act:
        seed = seed_of(name_or_act)
        return (f"{depth_of(name_or_act)}L {ACT_LABELS.get(act_of(name_or_act), name_or_act)}"
                + (f" (seed {seed})" if seed else ""))
    return ACT_LABELS.get(name_or_act, name_or_act)


def composition(scale: str) -> str:
    """What a scale's zoo holds, in words, from its ``Scale`` (the book's one description):
    "1L GELU baseline and SoLU + LN (3 seeds each)" and so on."""
    s = _check_scale(scale)
    one = min(s.depths)
    parts = [f"{one}L {label('gelu')} and {label('solu_ln')} ({s.pair_seeds} seed"
             f"{'s each' if s.pair_seeds > 1 else ''})"]
    if s.ablation_seeds:
        ablations = [label(a) for a in ABLATIONS]
        if s.blocks > 1:
            ablations.append(f"{label('solu_ln')} in {s.blocks} blocks")
        parts.append(f"the {one}L ablations {', '.join(ablations)} ({s.ablation_seeds} seed"
                     f"{'s each' if s.ablation_seeds > 1 else ''})")
    deep = [d for d in s.depths if d != one]
    if deep:
        parts.append(", ".join(f"{d}L" for d in deep) + " GELU / SoLU + LN pairs (1 seed)")
    return "; ".join(parts)


def _variants(s: Scale) -> list[tuple[int, str, int, int]]:
    """(depth, act, blocks, seeds) of every model kind of a scale, in zoo order."""
    one = min(s.depths)
    out = []
    for depth in s.depths:
        for act in ("gelu", "solu_ln"):
            out.append((depth, act, 1, s.pair_seeds if depth == one else 1))
    if s.ablation_seeds:
        out += [(one, act, 1, s.ablation_seeds) for act in ABLATIONS]
    if s.blocks > 1 and s.ablation_seeds:
        out.append((one, "solu_ln", s.blocks, s.ablation_seeds))
    return out


def zoo_configs(scale: str = "cpu", data: DataSpec | None = None) -> dict[str, TrainConfig]:
    """The training configs of every zoo model at ``scale``, keyed by name: the seed-0 models
    first (in the order "1L-gelu", "1L-solu_ln", ..., ablations), then the other seeds.

    Args:
        scale: "tiny", "cpu" or "gpu".
        data: a corpus to use instead of the scale's default.
    """
    s = _check_scale(scale)
    data = data or s.data
    one = min(s.depths)
    configs = {}
    for seed_pass in (0, 1):
        for depth, act, blocks, seeds in _variants(s):
            for seed in (range(1) if seed_pass == 0 else range(1, seeds)):
                model = ModelConfig(n_layers=depth, d_model=s.d_model, n_heads=s.n_heads,
                                    d_head=s.d_head, d_mlp=s.d_mlp, d_vocab=data.vocab_size,
                                    n_ctx=s.n_ctx, act_fn=act, solu_blocks=blocks, seed=seed)
                name = model_name(depth, act, blocks, seed)
                deep = depth != one
                configs[name] = TrainConfig(
                    model=model, data=data, name=name, batch_size=s.batch_size,
                    max_steps=s.max_steps,
                    warmup_steps=(s.deep_warmup_steps if deep and s.deep_warmup_steps
                                  else s.warmup_steps),
                    eval_every=s.eval_every, eval_rows=s.eval_rows,
                    final_eval_rows=s.final_eval_rows, checkpoint_every=s.checkpoint_every,
                    log_every=s.log_every, data_seed=seed, precision=s.precision,
                    **({"lr_embed": s.lr_embed} if s.lr_embed is not None else {}),
                    snapshot_steps=() if deep else s.snapshot_steps)
    return configs


def seed_names(name: str, scale: str = "cpu") -> list[str]:
    """Every seed of ``name``'s variant in the zoo, seed 0 first ("1L-gelu" -> ["1L-gelu",
    "1L-gelu-s1", "1L-gelu-s2"] at the cpu scale)."""
    variant = variant_of(name)
    return [n for n in zoo_configs(scale) if variant_of(n) == variant]


def zoo_config(name: str, scale: str = "cpu", data: DataSpec | None = None) -> TrainConfig:
    configs = zoo_configs(scale, data)
    if name not in configs:
        raise ConfigError(f"no model {name!r} in the {scale} zoo: choose one of {sorted(configs)}")
    return configs[name]


def run_dir_for(cfg: TrainConfig, scale: str, runs_dir: str | Path | None = None) -> Path:
    """``runs_dir/<scale>/<name>-<hash>``: a changed config gets a fresh directory (cpu-full
    keeps its runs under cpu's folder, so the runs they share are trained once)."""
    root = Path(runs_dir) if runs_dir is not None else paths.runs_dir()
    under = SCALES[scale].runs_under if scale in SCALES else None
    return root / (under or scale) / f"{cfg.name or 'run'}-{cfg.run_hash()}"


@add_repair_command
def retrain_command(run_dir: Path) -> str | None:
    """``solu-repro train NAME --scale S [--runs-dir R] --retrain`` for a zoo run directory
    (what every error about its files advises), None for any other directory."""
    name, _, run_hash = Path(run_dir).name.rpartition("-")
    root = Path(run_dir).parent.parent
    for scale, s in SCALES.items():
        if (s.runs_under or scale) != Path(run_dir).parent.name:
            continue
        cfg = zoo_configs(scale).get(name)
        if cfg is not None and cfg.run_hash() == run_hash:
            where = ("" if root.resolve() == paths.runs_dir().resolve()
                     else f" --runs-dir {shlex.quote(str(root))}")
            return f"solu-repro train {name} --scale {scale}{where} --retrain"
    return None


for _scale, _s in SCALES.items():  # a damaged corpus of a scale names `data --scale S --rebuild`
    name_spec(_s.data, f"--scale {_scale}")


def run_status(cfg: TrainConfig, run_dir: Path) -> str:
    """"trained", "missing" (not finished: the next ``zoo`` trains or resumes it) or
    "damaged" (``result.json`` corrupt, or weights or snapshots missing: ``retrain_command``
    restores it). Cheap: no weights are read."""
    try:
        if read_result(run_dir) is None:
            return "missing"
        check_finished(cfg, run_dir)
    except CheckpointError:
        return "damaged"
    return "trained"


class RunLockedError(RuntimeError):
    """Another process holds the lock of this run."""


@contextlib.contextmanager
def run_lock(run_dir: Path, wait: bool = True) -> Iterator[None]:
    """An exclusive lock on a run; a second process waits (or fails fast with ``wait=False``).

    Under torchrun only rank 0 takes it: the other ranks are part of the same training.
    """
    if int(os.environ.get("RANK", "0")) != 0:
        yield
        return
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(run_dir.parent / f".{run_dir.name}.lock", "w") as lock_file:
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                raise RunLockedError(f"another process is training {run_dir}; wait for it to "
                                   "finish (its result will then be reused)") from None
            print(f"waiting for another process that is training {run_dir.name} ...", flush=True)
            fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


class ZooWorkerError(RuntimeError):
    """A child process of ``train_zoo(workers > 1)`` failed; the message says why (the
    child's own error line) and what to do."""


WORKER_PARENT_ENV = "SOLU_REPRO_ZOO_PARENT"
"""Set in the environment of ``_train_in_processes``'s children: their parent's process id."""


def die_with_parent() -> None:
    """In a child of ``_train_in_processes``: be stopped (SIGTERM) when the parent dies, even
    by SIGKILL (Linux ``prctl(PR_SET_PDEATHSIG)``), and stop now if it already has."""
    parent = os.environ.get(WORKER_PARENT_ENV)
    if not parent:
        return
    # The parent stops a worker with Ctrl-C first (``_stop_children``): honour it even where a
    # shell started the zoo in the background, which ignores SIGINT for all its descendants.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # 1: PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if str(os.getppid()) != parent:  # the parent died before the prctl: nobody to train for
        os.kill(os.getpid(), signal.SIGTERM)


@dataclass(frozen=True)
class ZooRun:
    """A trained zoo model: its name, config, directory and final result."""

    name: str
    scale: str
    config: TrainConfig
    run_dir: Path
    result: dict[str, Any]

    step: int | None = None
    """None: the finished run; a step of ``config.snapshot_steps``: the weights kept there
    (``at``), whose ``result`` holds that step's validation evaluation."""

    @property
    def weights_path(self) -> Path:
        """The file the weights load from: what the cached harvests and scores are keyed by."""
        if self.step is not None:
            return snapshot_path(self.run_dir, self.step)
        return self.run_dir / "model.safetensors"

    @property
    def steps(self) -> tuple[int, ...]:
        """Every point of this run with weights: its snapshot steps, then the final step."""
        return (*self.config.snapshot_steps, self.config.max_steps)

    def at(self, step: int) -> "ZooRun":
        """This run as it was at ``step`` (one of ``steps``): the same name, config, corpus and
        tokenizer, that step's weights and validation loss. Harvests, scores and instruments are
        keyed by the weights file, so each step's are cached apart."""
        if step == self.config.max_steps:
            return dataclasses.replace(self, step=None, result=read_result(self.run_dir) or
                                       self.result)
        if step not in self.config.snapshot_steps:
            raise ConfigError(f"{self.name} kept no weights at step {step}: its steps are "
                              f"{list(self.steps)}")
        record = read_snapshot(self.run_dir, step)
        base = read_result(self.run_dir) or self.result
        return dataclasses.replace(self, step=step, result={**base, **record})

    @property
    def tokens(self) -> int:
        """Training tokens seen by these weights."""
        return int(self.result.get("tokens", 0))

    def load_model(self, device: str = "cpu") -> Transformer:
        return load_weights(self.weights_path, device)

    def tokenizer(self) -> Tokenizer:
        """The tokenizer this run was trained with (kept in the run directory)."""
        return load_tokenizer(self.run_dir / "tokenizer.json")

    def corpus(self, data_dir: str | Path | None = None) -> TokenizedCorpus:
        """The exact tokenized corpus this run was trained and validated on."""
        root = Path(data_dir) if data_dir is not None else paths.data_dir()
        path = root / self.result["data_hash"]
        if not path.is_dir():
            raise DataError(
                f"the corpus {self.name} was trained on ({path}) is not in the data cache: "
                f"rebuild it with `solu-repro data --scale {self.scale}` (if this machine's "
                "sources differ, that builds a different corpus: retrain the run instead)")
        return open_dataset(path)


SHARED_PRECISION_FILE = "precision.json"
"""``<runs_dir>/<scale folder>/precision.json``: the one precision decision of a zoo's "auto"
CPU runs on one machine (``shared_precision``)."""


def _machine() -> dict[str, Any]:
    """What a precision probe's answer depends on: the CPU, its kernel path and torch."""
    import platform

    import torch

    from .train.precision import cpu_capability

    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": model or platform.processor() or platform.machine(),
            "cpu_capability": cpu_capability(), "torch": torch.__version__}


def shared_precision(scale: str, runs_dir: str | Path | None = None, log=None):
    """The precision every new "auto" run of ``scale``'s zoo trains in on this CPU, decided once.

    A probe (``train.precision.probe_cpu``) times the machine as it is at that moment: beside
    another job, each model probing on its own could choose differently, and a matched seed
    pair would compare fp32 with bf16 (it happened: 3 of the cpu zoo's 6 models in each). So
    the zoo probes once, on its most expensive model, keeps the answer in
    ``SHARED_PRECISION_FILE`` with the machine it was measured on, and gives it to every run
    (``train.precision.SHARED_ENV``); a run directory moved to another machine probes again
    there. None where no probe applies (an explicit precision, or a CUDA GPU).
    """
    import json

    import torch

    from .atomic import write_json
    from .train.precision import PrecisionChoice, probe_cpu

    s = _check_scale(scale)
    if s.precision != "auto" or torch.cuda.is_available():
        return None
    configs = zoo_configs(scale)
    folder = run_dir_for(next(iter(configs.values())), scale, runs_dir).parent
    path = folder / SHARED_PRECISION_FILE
    machine = _machine()

    def saved_choice():
        try:
            saved = json.loads(path.read_text())
            if saved.get("machine") == machine:
                return PrecisionChoice.from_dict(saved["choice"])
        except (OSError, ValueError, KeyError, TypeError):
            pass  # none yet, another machine's, or unreadable: probe again
        return None

    choice = saved_choice()
    if choice is not None:
        return choice
    from .speed import train_flops_per_token

    folder.mkdir(parents=True, exist_ok=True)
    # one process probes; another one deciding at the same time waits and reads its answer
    with open(folder / f".{SHARED_PRECISION_FILE}.lock", "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            choice = saved_choice()
            if choice is not None:
                return choice
            costly = max(configs.values(), key=lambda c: train_flops_per_token(c.model))
            choice = dataclasses.replace(probe_cpu(costly), reason="zoo probe")
            write_json(path, {"machine": machine, "choice": choice.to_dict(),
                              "probed_on": costly.name})
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)
    if log is not None:
        log(f"precision of the {scale} zoo's new runs on this machine: {choice}")
    return choice


@contextlib.contextmanager
def _precision_shared(scale: str, runs_dir: str | Path | None, log=None) -> Iterator[None]:
    """Within: ``train.precision.SHARED_ENV`` holds the zoo's one choice (kept if a parent
    zoo process set it already)."""
    import json

    from .train.precision import SHARED_ENV

    if os.environ.get(SHARED_ENV):
        yield
        return
    choice = shared_precision(scale, runs_dir, log)
    if choice is None:
        yield
        return
    os.environ[SHARED_ENV] = json.dumps(choice.to_dict())
    try:
        yield
    finally:
        os.environ.pop(SHARED_ENV, None)


def ensure_trained(name: str, scale: str = "cpu", runs_dir: str | Path | None = None,
                   data: DataSpec | None = None, progress: bool = True,
                   data_dir: str | Path | None = None) -> ZooRun:
    """Return the trained zoo model ``name``, training it first if it is missing.

    A finished run is reused; an interrupted one resumes from its newest checkpoint.

    Raises:
        CheckpointError: the run's ``result.json`` is corrupt, or it is finished but its
            weights or snapshots are missing; the message names ``retrain_command``.
    """
    cfg = zoo_config(name, scale, data)
    run_dir = run_dir_for(cfg, scale, runs_dir)
    result = read_result(run_dir)
    if result is None:
        with run_lock(run_dir), torch_threads(SCALES[scale].train_threads), \
                _precision_shared(scale, runs_dir):
            result = train(cfg, run_dir, resume=True, progress=progress, data_dir=data_dir)
    else:
        check_finished(cfg, run_dir)
    return ZooRun(name, scale, cfg, run_dir, result)


def train_zoo(scale: str = "cpu", runs_dir: str | Path | None = None,
              data: DataSpec | None = None, names: list[str] | None = None,
              progress: bool = True, data_dir: str | Path | None = None,
              workers: int = 1) -> dict[str, ZooRun]:
    """Train every missing model of a scale (or just ``names``) and return them all.

    Args:
        workers: processes training models side by side, each on ``cores // workers``
            threads (``benchmarks/train_throughput.py --processes`` measures whether that
            beats one process on every core: on a 2-core CPU it did, by about 1.2x). Each
            model is trained by one process, so its result does not depend on ``workers``
            beyond the thread count.
    """
    configs = zoo_configs(scale, data)
    for name in names or []:
        if name not in configs:
            raise ConfigError(f"no model {name!r} in the {scale} zoo: choose from {sorted(configs)}")
    names = names or list(configs)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers must be a positive integer, got {workers!r}")
    missing = [n for n in names
               if read_result(run_dir_for(configs[n], scale, runs_dir)) is None]
    if workers > 1 and len(missing) > 1 and data is not None:
        raise ConfigError("train_zoo(workers > 1) trains the scale's own corpus; pass "
                          "workers=1 with a custom DataSpec")
    # one precision for every new run of the zoo (shared_precision), decided before any trains
    with _precision_shared(scale, runs_dir, print if progress else None) if missing \
            else contextlib.nullcontext():
        if workers > 1 and len(missing) > 1:
            _train_in_processes(scale, missing, min(workers, len(missing)), runs_dir,
                                data_dir, progress)
        return {name: ensure_trained(name, scale, runs_dir, data, progress, data_dir)
                for name in names}


def _train_in_processes(scale: str, names: list[str], workers: int,
                        runs_dir: str | Path | None, data_dir: str | Path | None,
                        progress: bool) -> None:
    """Train ``names`` in ``workers`` child processes (``solu-repro zoo --only ...``), the
    deepest models first, each to the least loaded process. With ``progress``, a terminal
    shows a live line per model and one for the zoo; elsewhere (CI, a pipe, ``TERM=dumb``)
    a line per finished model (``zoo_progress``)."""
    import subprocess

    from .data import build_dataset
    from .speed import train_flops_per_token
    from .zoo_progress import ZooWatcher, use_bars, watch

    build_dataset(SCALES[scale].data, data_dir, progress=progress)  # once, before the children
    loads: list[list[str]] = [[] for _ in range(workers)]
    configs = zoo_configs(scale)
    cost = {n: train_flops_per_token(configs[n].model) * configs[n].max_steps for n in names}
    for name in sorted(names, key=lambda n: -cost[n]):
        min(loads, key=lambda group: sum(cost[n] for n in group)).append(name)
    threads = max(1, (os.cpu_count() or 1) // workers)
    if progress:
        print(f"training {len(names)} models in {workers} processes of {threads} thread(s): "
              + "; ".join(", ".join(group) for group in loads), flush=True)
    watcher = ZooWatcher(loads, {n: run_dir_for(configs[n], scale, runs_dir) for n in names},
                         {n: configs[n].max_steps for n in names}, cost)
    mode = "quiet" if not progress else "bars" if use_bars(sys.stdout) else "plain"
    with contextlib.ExitStack() as stack:
        procs, errs = [], []
        previous = _interrupt_on_sigterm()
        try:
            for group in loads:
                cmd = [sys.executable, "-m", "solu_repro.cli", "zoo", "--scale", scale,
                       "--quiet", "--workers", "1", "--threads", str(threads), "--only", *group]
                if runs_dir is not None:
                    cmd += ["--runs-dir", str(runs_dir)]
                if data_dir is not None:
                    cmd += ["--data-dir", str(data_dir)]
                env = dict(os.environ, OMP_NUM_THREADS=str(threads),
                           **{WORKER_PARENT_ENV: str(os.getpid())})
                # the children's output goes to files: a full pipe would stop them
                out = stack.enter_context(tempfile.TemporaryFile())
                errs.append(stack.enter_context(tempfile.TemporaryFile()))
                # each child in its own process group, stopped by this process (below) or,
                # should this one be killed outright, by the kernel (die_with_parent)
                procs.append(subprocess.Popen(cmd, env=env, stdout=out, stderr=errs[-1],
                                              start_new_session=True))
            codes = watch(procs, watcher, mode)
        finally:
            if previous is not _NOT_SET:
                signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
            _stop_children(procs)
        from shlex import quote

        rerun = f"solu-repro zoo --scale {scale}" + (
            f" --runs-dir {quote(str(runs_dir))}" if runs_dir is not None else "") + (
            f" --data-dir {quote(str(data_dir))}" if data_dir is not None else "")
        failed: dict[str, list[str]] = {}  # the same reason once, with every group it stopped
        for group, code, err in zip(loads, codes, errs):
            if code != 0:
                err.seek(0)
                why = _worker_failure(group, code, err.read().decode(errors="replace"), rerun)
                failed.setdefault(why, []).extend(group)
    if failed:
        raise ZooWorkerError("training in parallel processes failed: " + "; ".join(
            f"{', '.join(names)}: {why}" for why, names in failed.items()))


_NOT_SET = object()


def _interrupt_on_sigterm():
    """Make SIGTERM stop this process as Ctrl-C does (so its children are stopped first);
    returns the handler to restore (``_NOT_SET`` off the main thread, where none is set)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return _NOT_SET

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    return signal.signal(signal.SIGTERM, interrupt)


def _stop_children(procs) -> None:
    """Stop the children still running (this process was interrupted or failed): Ctrl-C to
    each one's process group, then SIGTERM, then SIGKILL; each keeps its finished runs and
    checkpoints."""
    import subprocess

    for sig, patience in ((signal.SIGINT, 10), (signal.SIGTERM, 5), (signal.SIGKILL, None)):
        running = [p for p in procs if p.poll() is None]
        if not running:
            return
        for proc in running:
            try:
                os.killpg(proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        for proc in running:
            try:
                proc.wait(timeout=patience)
            except subprocess.TimeoutExpired:
                pass


def _worker_failure(group: Sequence[str], code: int, stderr: str, rerun: str) -> str:
    """Why one child failed, in one line: its own ``solu-repro zoo: error:`` line when it
    wrote one (that names the problem and its fix), else what stopped it and what to run."""
    prefix = "solu-repro zoo: error: "
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    own = [line[len(prefix):] for line in lines if line.startswith(prefix)]
    if own:
        return own[-1]
    if code < 0 or code == 130:
        how = "was interrupted"
        if code < 0:
            try:
                how = f"was stopped by {signal.Signals(-code).name}"
            except ValueError:
                how = f"was stopped by signal {-code}"
        return f"its process {how} (finished runs are kept); `{rerun}` resumes the rest"
    last = lines[-1] if lines else f"exit status {code}"
    return (f"{last} -- for the whole error, run `{rerun} --workers 1 --only "
            f"{' '.join(group)}`")
