"""The paper's blinded human evaluation (§6.1), as a resumable, crash-safe tool.

Protocol (§6.1): neurons are drawn at random from a SoLU model and its baseline, shuffled
together and shown without saying which model they come from. For each, the evaluator looks
at the top dataset examples (about 20 snippets, firing tokens highlighted by activation) for
1-2 minutes and marks it INTERPRETABLE if 80% or more of the strongest firings can be
explained by a single rule or category, NOT INTERPRETABLE otherwise. Only after all neurons
are judged is the data unblinded (§6.2: ~35% baseline vs ~60% SoLU).

A session is a directory:

* ``manifest.json``: the sampled items (opaque id -> model, layer, neuron) and the settings.
  It is the unblinding key: evaluators should not open it before they are done.
* ``judgments.jsonl``: append-only, one line per judgment, each line written with a single
  write + flush + fsync. A crash loses at most the judgment being written; a torn last line
  is ignored with a warning. A later judgment of an item by the same evaluator supersedes an
  earlier one, so re-judging is just appending.

Session logic needs only each model's shape (layers x neurons); rendering snippets needs the
model, its corpus and its harvest (``SnippetRenderer``). ``load_zoo_entries`` loads trained
zoo models for the command line (``solu-repro blind``) and the book; tests build sessions in
memory.

Modules, in the order they build on each other:

* ``defaults``: the settings of a new session (models, scale, neurons, examples, seed, hook).
* ``protocol``: the paper's instruction and the judgments an evaluator can give.
* ``errors``: ``BlindError`` and ``TornLineWarning``.
* ``sampling``: the models under evaluation and the seeded, shuffled draw of neurons.
* ``store``: the append-only, fsynced judgments file.
* ``session``: ``BlindSession``, the manifest and the judgments of one directory.
* ``report``: unblinding, with Wilson and Newcombe intervals and inter-rater agreement.
* ``render``: snippets shown on a relative scale, so nothing on screen names the model.
* ``app``: ``BlindApp``, the JupyterLab app (imports ipywidgets only when one is made).
* ``terminal``: ``solu-repro blind``, the terminal loop and its options.
"""

from .app import BUTTON_LABELS, BlindApp
from .defaults import (
    DEFAULT_HOOK,
    DEFAULT_MODELS,
    DEFAULT_N_EXAMPLES,
    DEFAULT_N_PER_MODEL,
    DEFAULT_SCALE,
    DEFAULT_SEED,
)
from .errors import BlindError, TornLineWarning
from .protocol import INSTRUCTION, JUDGMENTS, PAPER_INSTRUCTION, TIME_HINT
from .render import Renderer, SnippetRenderer, load_zoo_entries, relative_snippets
from .report import (
    BlindReport,
    ModelDifference,
    ModelResult,
    RaterAgreement,
    judgments_by_neuron,
    unblind,
)
from .sampling import BlindItem, BlindModel, ModelShape, as_blind_model, sample_items
from .session import (
    FORMAT,
    FORMAT_VERSION,
    MANIFEST_NAME,
    BlindSession,
    default_evaluator,
    manifest_hash,
)
from .store import JUDGMENTS_NAME, Judgment, read_judgments
from .terminal import (
    HYPOTHESIS_PROMPT,
    KEYS,
    PROMPT,
    QUIT_WORDS,
    SEPARATOR,
    add_blind_arguments,
    judge_loop,
    run_blind_cli,
)

__all__ = [
    "BUTTON_LABELS", "DEFAULT_HOOK", "DEFAULT_MODELS", "DEFAULT_N_EXAMPLES",
    "DEFAULT_N_PER_MODEL", "DEFAULT_SCALE", "DEFAULT_SEED", "FORMAT", "FORMAT_VERSION",
    "HYPOTHESIS_PROMPT", "INSTRUCTION", "JUDGMENTS", "JUDGMENTS_NAME", "KEYS", "MANIFEST_NAME",
    "PAPER_INSTRUCTION", "PROMPT", "QUIT_WORDS", "SEPARATOR", "TIME_HINT", "BlindApp",
    "BlindError", "BlindItem", "BlindModel", "BlindReport", "BlindSession", "Judgment",
    "ModelDifference", "ModelResult", "ModelShape", "RaterAgreement", "Renderer",
    "SnippetRenderer", "TornLineWarning", "add_blind_arguments", "as_blind_model",
    "default_evaluator", "judge_loop", "judgments_by_neuron", "load_zoo_entries",
    "manifest_hash", "read_judgments", "relative_snippets", "run_blind_cli", "sample_items",
    "unblind",
]
