"""Training, one job a module, each importing only the ones above it in this list:

- ``config``: ``TrainConfig`` (validated, saved with the run, hashed into its directory name);
- ``runtime``: the device, torchrun's process group, autocast, CPU threads;
- ``timing``: interleaved side-by-side timing (pure, used by the probe and the benchmarks);
- ``step``: the learning-rate schedule, AdamW's groups and ``train_step``, the one
  definition of a step (``make_step`` builds one to time);
- ``precision``: fp32 or bf16, chosen by timing ``make_step`` on this machine;
- ``checkpoint``: weights (safetensors) and resumable checkpoints, written atomically with
  their SHA-256 recorded, verified and shape-checked before anything is allocated on load;
- ``loop``: ``train``, nanoGPT-style: init or resume, step, log/evaluate/checkpoint, finish;
  ``repair``: restore a run's missing or damaged files (``solu-repro train ... --retrain``).

The names a user needs are here: ``from solu_repro.train import TrainConfig, train``.
"""

from .checkpoint import (CheckpointError, list_checkpoints, load_checkpoint, load_weights,
                         repair_command, save_weights)
from .config import DEVICES, OPERATIONAL_FIELDS, PRECISIONS, TrainConfig, TrainingDivergedError
from .loop import (check_finished, evaluate, read_metrics, read_result, read_snapshot, repair,
                   snapshot_path, train)
from .precision import PrecisionChoice
from .runtime import Runtime, autocast, setup_runtime, torch_threads
from .step import (HIDDEN_MATRICES, lr_multiplier, make_optimizer, make_step, param_groups,
                   set_lr, train_step)

__all__ = ["CheckpointError", "DEVICES", "HIDDEN_MATRICES", "OPERATIONAL_FIELDS", "PRECISIONS",
           "PrecisionChoice", "Runtime", "TrainConfig", "TrainingDivergedError", "autocast",
           "check_finished", "evaluate", "list_checkpoints", "load_checkpoint", "load_weights", "lr_multiplier",
           "make_optimizer", "make_step", "param_groups", "read_metrics", "read_result", "read_snapshot",
           "repair", "repair_command", "save_weights", "set_lr", "setup_runtime", "snapshot_path", "torch_threads", "train", "train_step"]
