"""Exporting a trained run in formats that other tools load without this package.

``solu-repro export RUN --format FORMAT`` writes one folder (from Python:
``export_transformer_lens(resolve_run("1L-solu_ln"), "out")``, ``export_neuron_json``):

**transformer-lens** (a model TransformerLens 3.x's ``HookedTransformer`` loads):

* ``config.json``: exactly the ``HookedTransformerConfig`` keyword arguments
  (``interop.tl_config_dict``; no device or dtype: TL's defaults, float32 on CUDA if available);
* ``model.safetensors``: the weights under TL-3 parameter names and layouts
  (``interop.tl_state_dict``), float32;
* ``tl4/config.json``, ``tl4/model.safetensors``: the same model for TransformerLens 4, which
  has no ``HookedTransformer``: ``TransformerBridgeConfig`` keywords and the native bridge's
  state dict (``interop.tl4_config_dict``, ``tl4_state_dict``), loaded by ``TL4_ONE_LINER``;
  left out, with the reason in the README, where TL 4 cannot compute the model exactly
  (``gelu_ln``: its native MLP adds the extra LayerNorm only for ``solu_ln``);
* ``tokenizer.json``: the run's tokenizer (Hugging Face ``tokenizers`` format); each training
  row started with ``<|endoftext|>`` (id 0);
* ``solu_repro.json``: provenance (run, its weights' SHA-256, package version, our
  ``ModelConfig``) and ``README.md``: how to load it.

The load is ``load_state_dict(..., strict=False)`` on a fresh ``HookedTransformer``
(``TL_ONE_LINER``): ``strict=False`` only because TL rebuilds its attention mask and rotary
tables from the config rather than reading them; every stored tensor is a parameter TL has
(the returned ``unexpected_keys`` is empty). Loaded this way, with none of TL's optional
weight processing, the model gives our logits and our ``hook_pre``/``hook_mid``/``hook_post``
values. TL's processing (``process_weights_``, ``from_pretrained``'s defaults: ``fold_ln``,
centering, value-bias folding) keeps the log-probabilities but changes the raw logits and
``hook_post``, and on a ``gelu_ln`` model ``fold_ln`` drops the MLP LayerNorm. TL has no
``gelu_ln`` activation: such a model needs ``GELU_LN_LINE`` first. Blocked models
(``solu_blocks > 1``) have no TL equivalent and are refused.

**neuron-json** (each neuron's top examples, explanation and scores, for any JSON reader):

* ``index.json``: the model, the hook, the corpus rows, the judge's settings, what every score
  field means, one entry per layer (its file and its interpretable fraction), provenance;
* ``layer_<L>.json``: ``{"layer", "hook_name", "neurons": [...]}``, one object per neuron:
  ``index``; ``stats`` (max, mean, ... of its activation on the harvested tokens);
  ``explanation`` (the judge's text, its kind and values, the tokens it names);
  ``scores`` (``SCORE_FIELDS``); ``top_examples``: the harvest's strongest firings, one per
  context window, strongest first, each with the window's tokens, the activation at every
  token, the index of the firing token and where it lies in the corpus split;
* ``index.schema.json``, ``layer.schema.json``: JSON Schemas (draft 2020-12) of the two
  kinds of file, with every field described (``neuron_json_schemas``).

Numbers are JSON numbers (float32 values written in their shortest exact form); a score that
is undefined (e.g. precision of an explanation that never holds) is ``null``, never NaN.
Corpus text is untrusted: it only ever appears as JSON strings (escaped by the encoder, all
non-ASCII as ``\\u`` escapes). The harvest and the scores are the cached ones of
``solu-repro harvest``/``score`` (computed first if missing), so the export shows exactly
what the book and the judge saw.

The folder is written beside its destination and moved into place when complete, so a reader
never sees half an export. The destination must be new or empty; ``force`` replaces an earlier
export by this command (a folder holding ``solu_repro.json``) but never a folder of other
files.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shlex
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__, zoo
from .atomic import atomic_path, write_json, write_text
from .hooks import act_name
from .integrity import file_digest
from .model import ConfigError
from .train import TrainConfig
from .train.checkpoint import read_result
from .train.loop import check_finished

__all__ = [
    "EXPORTED_BY",
    "FORMATS",
    "NEURON_JSON_FORMAT",
    "NEURON_JSON_VERSION",
    "PROVENANCE_FILE",
    "SCORE_FIELDS",
    "ExportError",
    "check_destination",
    "default_output",
    "export_neuron_json",
    "export_transformer_lens",
    "neuron_json_schemas",
    "provenance",
    "resolve_run",
    "tl_load_code",
]

FORMATS = ("transformer-lens", "neuron-json")
PROVENANCE_FILE = "solu_repro.json"
"""Written in every export: what it was made from. Its presence marks a folder ``force`` may
replace."""
EXPORTED_BY = "solu-repro"
NEURON_JSON_FORMAT = "solu-repro-neuron-json"
NEURON_JSON_VERSION = 1
TL_FORMAT_VERSION = 1

TL_ONE_LINER = (
    "model = HookedTransformer(HookedTransformerConfig(**json.load(open({config}))));"
    " model.load_state_dict(load_file({weights}), strict=False)")
"""Loads an export under TransformerLens 3.x (after ``TL_IMPORTS``; ``{config}``,
``{weights}``: string literals of its two files' paths)."""
TL_IMPORTS = ("import json; from safetensors.torch import load_file; "
              "from transformer_lens import HookedTransformer, HookedTransformerConfig")
GELU_LN_LINE = ("from transformer_lens.utilities.activation_functions import "
                "SUPPORTED_ACTIVATIONS; import torch; "
                'SUPPORTED_ACTIVATIONS["gelu_ln"] = torch.nn.functional.gelu')
"""What a ``gelu_ln`` export needs before the config is built (exact GELU, then TL's MLP
LayerNorm, which TL 3 adds for any ``act_fn`` ending in ``_ln``; see ``interop``)."""
TL4_DIR = "tl4"
TL4_ONE_LINER = (
    "bridge = TransformerBridge.boot_native(TransformerBridgeConfig(**json.load(open({config}))));"
    " bridge.load_state_dict(load_file({weights}), strict=True)")
"""Loads the TL 4 copy of an export (``TL4_DIR``, after ``TL4_IMPORTS``) as a native
``TransformerBridge``: TL 4 has no ``HookedTransformer``."""
TL4_IMPORTS = ("import json; from safetensors.torch import load_file; "
               "from transformer_lens.config import TransformerBridgeConfig; "
               "from transformer_lens.model_bridge import TransformerBridge")


class ExportError(ConfigError):
    """A run that cannot be exported as asked, or a destination that must not be written;
    the message names the problem and the fix."""


# --- which run ------------------------------------------------------------------------------
def _scale_of_folder(folder: str) -> str:
    """The scale whose runs live in a folder of that name ("custom" for any other folder)."""
    if folder in zoo.SCALES:
        return folder
    for scale, s in zoo.SCALES.items():
        if (s.runs_under or scale) == folder:
            return scale
    return "custom"


def resolve_run(run: str, scale: str = "cpu", runs_dir: str | Path | None = None,
                step: int | None = None) -> zoo.ZooRun:
    """The finished run ``run`` names: a zoo model at ``scale`` ("1L-solu_ln"), or a run
    directory (one written by ``solu-repro train``). Nothing is trained.

    Args:
        step: one of the run's snapshot steps (its weights then), or None: the final weights.

    Raises:
        ConfigError: no such zoo model, not a run directory, or not finished training (the
            message names the command that trains it).
        CheckpointError: the run's result or weights files are missing or damaged (the
            message names the command that restores them).
    """
    path = Path(run)
    if os.sep in run or path.is_dir():
        if not (path / "config.json").is_file():
            raise ExportError(f"{path} is not a run directory (it has no config.json): give a "
                              "zoo model name such as 1L-solu_ln, or a folder written by "
                              "`solu-repro train`")
        cfg = TrainConfig.from_file(path / "config.json")
        run_dir, name = path, cfg.name or path.name
        scale = _scale_of_folder(path.resolve().parent.name)
        train_cmd = (f"`solu-repro train {shlex.quote(str(path / 'config.json'))} --run-dir "
                     f"{shlex.quote(str(path))} --resume`")
    else:
        cfg = zoo.zoo_config(run, scale)
        run_dir, name = zoo.run_dir_for(cfg, scale, runs_dir), run
        train_cmd = f"`solu-repro zoo --scale {scale} --only {run}`"
    result = read_result(run_dir)
    if result is None:
        raise ExportError(f"{name} has not finished training ({run_dir} has no result.json): "
                          f"train it first with {train_cmd}")
    check_finished(cfg, run_dir)
    found = zoo.ZooRun(name, scale, cfg, run_dir, result)
    return found if step is None else found.at(step)


# --- where it goes ---------------------------------------------------------------------------
def default_output(run: zoo.ZooRun, fmt: str) -> Path:
    """``./exports/<scale>/<name>[-step<N>]-<format>``."""
    step = f"-step{run.step}" if run.step is not None else ""
    return Path("exports") / run.scale / f"{run.name}{step}-{fmt}"


def _is_export(folder: Path) -> bool:
    try:
        return json.loads((folder / PROVENANCE_FILE).read_text()).get("exported_by") == EXPORTED_BY
    except (OSError, ValueError, AttributeError):
        return False


def check_destination(out: str | Path, force: bool = False) -> None:
    """Raise ``ExportError`` unless ``out`` may be written: it does not exist, is an empty
    folder, or (with ``force``) holds an earlier export of this command."""
    out = Path(out)
    if not out.exists():
        return
    if not out.is_dir():
        raise ExportError(f"{out} exists and is not a folder: choose a new folder to export to")
    if not any(out.iterdir()):
        return
    if _is_export(out):
        if not force:
            raise ExportError(f"{out} holds an earlier export: pass --force to replace it, or "
                              "choose another folder")
        return
    raise ExportError(f"{out} is not empty and holds no earlier export ({PROVENANCE_FILE}): "
                      "choose a new or empty folder (--force replaces only an earlier export, "
                      "never other files)")


@contextlib.contextmanager
def _staged(out: Path, force: bool) -> Iterator[Path]:
    """A fresh hidden folder beside ``out`` to write into; when the body succeeds it replaces
    ``out`` (an empty folder, or with ``force`` an earlier export), so a reader sees the old
    export or the whole new one. On failure nothing at ``out`` changes."""
    check_destination(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(staging, 0o777 & ~umask)  # mkdtemp's 0700 would hide the export from others
        yield staging
        check_destination(out, force)  # again: something may have appeared meanwhile
        old = None
        if out.exists():
            old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
            os.rename(out, old)
        os.rename(staging, out)
        if old is not None:
            shutil.rmtree(old)
    finally:
        if staging.exists():
            shutil.rmtree(staging)


def _write_json(path: Path, obj: Any, indent: int | None = 2) -> None:
    """Strict JSON (``allow_nan=False``: a NaN would be a bug here, not a ``NaN`` token other
    readers reject), ASCII only, atomically."""
    separators = (",", ": ") if indent else (",", ":")
    write_text(path, json.dumps(obj, indent=indent, separators=separators, allow_nan=False,
                                ensure_ascii=True) + "\n")


def provenance(run: zoo.ZooRun, fmt: str) -> dict[str, Any]:
    """What an export was made from: the run, its weights file and SHA-256, our config."""
    result = run.result
    return {
        "exported_by": EXPORTED_BY,
        "solu_repro_version": __version__,
        "format": fmt,
        "run": {"name": run.name, "scale": run.scale, "step": run.step,
                "run_dir": str(Path(run.run_dir).resolve()), "run_hash": result.get("run_hash"),
                "tokens": result.get("tokens"), "val_loss": result.get("val_loss"),
                "training_precision": result.get("precision"),
                "data_hash": result.get("data_hash")},
        "weights": {"file": str(Path(run.weights_path).resolve()),
                    "sha256": file_digest(run.weights_path)},
        "model_config": run.config.model.to_dict(),
    }


# --- transformer-lens ------------------------------------------------------------------------
def tl_load_code(folder: str | Path, act_fn: str, tl_major: int = 3) -> str:
    """The Python lines that load an export in ``folder`` with TransformerLens ``tl_major``
    (3: ``HookedTransformer``; 4: the native ``TransformerBridge`` of its ``tl4`` copy)."""
    folder = Path(folder) / TL4_DIR if tl_major == 4 else Path(folder)
    # JSON string literals are Python string literals: any path is quoted correctly
    paths = {key: json.dumps((folder / name).as_posix(), ensure_ascii=False)
             for key, name in (("config", "config.json"), ("weights", "model.safetensors"))}
    if tl_major == 4:
        return f"{TL4_IMPORTS}\n{TL4_ONE_LINER.format(**paths)}"
    lines = [TL_IMPORTS]
    if act_fn == "gelu_ln":
        lines.append(GELU_LN_LINE)
    lines.append(TL_ONE_LINER.format(**paths))
    return "\n".join(lines)


def _tl_readme(run: zoo.ZooRun, folder: str, tl4_problem: str | None) -> str:
    cfg = run.config.model
    step = f" at step {run.step}" if run.step is not None else ""
    gelu_ln = ("\nTransformerLens has no `gelu_ln` activation of its own: the second line adds "
               "it (exact GELU; TL 3 then applies its MLP LayerNorm, as for any `*_ln`).\n"
               if cfg.act_fn == "gelu_ln" else "")
    if tl4_problem is None:
        from .interop import tl_hook_name

        mid = ", ".join(f"`{tl_hook_name(act_name('mid', layer), cfg.act_fn, 4)}`"
                        for layer in range(cfg.n_layers))
        tl4 = f"""TransformerLens 4 has no `HookedTransformer`; it loads the copy in `{TL4_DIR}/`
(TL 4's native names and layout, Q and K reordered for its adjacent-pair rotary) as a
`TransformerBridge`:

```python
{tl_load_code(folder, cfg.act_fn, 4)}
```

It gives the same logits and MLP activations; our `hook_mid` is {mid} there (by layer)."""
    else:
        tl4 = f"There is no TransformerLens 4 copy: {tl4_problem}."
    mid3 = ("`hook_mid`, before the MLP LayerNorm, is what the paper interprets"
            if cfg.has_mlp_ln else "without an MLP LayerNorm TL has no `hook_mid`: ours equals "
            "`hook_post`")
    return f"""# {run.name}{step} for TransformerLens

A {cfg.n_layers}-layer `{cfg.act_fn}` transformer trained by solu-repro {__version__}
(scale {run.scale}), in TransformerLens 3.x's names. From the folder that holds this one:

```python
{tl_load_code(folder, cfg.act_fn)}
```

`strict=False` only because TL builds its attention mask and rotary tables from the config;
every tensor in `model.safetensors` is a TL parameter. Loaded this way the model computes our
logits and our `hook_pre`/`hook_mid`/`hook_post` activations ({mid3}).
Do not process the weights (`process_weights_`, `fold_ln`, centering) if you compare hook
values: processing keeps the log-probabilities but changes the raw logits and
`hook_post`{", and drops this model's MLP LayerNorm" if cfg.act_fn == "gelu_ln" else ""}.
{gelu_ln}
{tl4}

Token ids come from `tokenizer.json` (Hugging Face `tokenizers`); every training row started
with `<|endoftext|>` (id 0). Provenance (run, weights SHA-256, our config): `{PROVENANCE_FILE}`.
"""


def export_transformer_lens(run: zoo.ZooRun, out: str | Path, *, force: bool = False) -> Path:
    """Write ``run`` as a TransformerLens model folder (module docstring) at ``out``.

    Raises:
        ExportError: a blocked model, or a destination that must not be written.
        CheckpointError: the weights are missing or damaged (names the repair command).
    """
    from safetensors.torch import save_file

    from .interop import tl4_config_dict, tl4_state_dict, tl_config_dict, tl_state_dict

    cfg = run.config.model
    if cfg.solu_blocks > 1:
        raise ExportError(f"{run.name} is a blocked model (solu_blocks={cfg.solu_blocks}): "
                          "TransformerLens has no blocked SoLU or MLP LayerNorm, so it cannot "
                          "load it exactly; --format neuron-json exports its neurons")
    out = Path(out)
    check_destination(out, force)
    model = run.load_model("cpu")  # verifies the weights against their recorded SHA-256
    versions = {"config.json": tl_config_dict(cfg), "model.safetensors": tl_state_dict(model)}
    tl4_problem = None
    try:
        tl4 = {f"{TL4_DIR}/config.json": tl4_config_dict(cfg),
               f"{TL4_DIR}/model.safetensors": tl4_state_dict(model)}
        versions.update(tl4)
    except NotImplementedError as exc:  # e.g. gelu_ln: TL 4 cannot compute it exactly
        tl4_problem = str(exc)
    with _staged(out, force) as d:
        for name, content in versions.items():
            if name.endswith(".json"):
                _write_json(d / name, content)
            else:
                with atomic_path(d / name) as tmp:
                    save_file({k: v.float().contiguous() for k, v in content.items()}, str(tmp),
                              metadata={"format": "pt"})
        shutil.copyfile(Path(run.run_dir) / "tokenizer.json", d / "tokenizer.json")
        info = provenance(run, "transformer-lens")
        info["format_version"] = TL_FORMAT_VERSION
        info["files"] = {name: file_digest(d / name) for name in [*versions, "tokenizer.json"]}
        info["load"] = {"transformer_lens_3": tl_load_code(".", cfg.act_fn),
                        "transformer_lens_4": (tl_load_code(".", cfg.act_fn, 4)
                                               if tl4_problem is None else None)}
        if tl4_problem is not None:
            info["load"]["transformer_lens_4_refused"] = tl4_problem
        write_text(d / "README.md", _tl_readme(run, out.name, tl4_problem))
        _write_json(d / PROVENANCE_FILE, info)
    return out


# --- neuron-json -----------------------------------------------------------------------------
NUM_OR_NULL = {"type": ["number", "null"]}

SCORE_FIELDS: dict[str, tuple[dict[str, Any], str]] = {
    "interpretable": ({"type": "boolean"},
                      "the paper's rule (§6.1): the explanation covers at least "
                      "judge.settings.threshold of the held-out top firings, holds at least "
                      "min_lift times more often there than in held-out text at large, and "
                      "the neuron fires in at least min_top windows on both halves"),
    "spectrum_interpretable": ({"type": "boolean"},
                               "interpretable, and precision and recall both at least 0.5"),
    "dead": ({"type": "boolean"}, "the neuron never fires (max activation <= 0): no explanation"),
    "rare": ({"type": "boolean"}, "fewer than min_top firings to judge on: not interpretable"),
    "coverage": ({"type": "number"},
                 "fraction of the held-out top firings (odd rows) where the explanation holds"),
    "selection_coverage": (NUM_OR_NULL, "the same on the selection top firings (even rows, the "
                                        "top_examples here), where the explanation was chosen"),
    "base_rate": ({"type": "number"},
                  "fraction of all held-out tokens where the explanation holds"),
    "lift": (NUM_OR_NULL, "coverage / base_rate; null when base_rate is 0 and coverage is not "
                          "(infinite)"),
    "precision": (NUM_OR_NULL, "of held-out tokens where the explanation holds, the fraction "
                               "where the neuron fires (activation above fire_fraction x its "
                               "max); null if undefined"),
    "recall": (NUM_OR_NULL, "of held-out tokens where the neuron fires, the fraction the "
                            "explanation covers; null if undefined"),
    "correlation": (NUM_OR_NULL, "Pearson correlation over held-out tokens between the "
                                 "explanation's 0/1 indicator and the activation; null if "
                                 "undefined"),
    "n_top": ({"type": "integer"}, "held-out top firings the coverage is measured on"),
    "n_holds": ({"type": "integer"}, "held-out tokens where the explanation holds"),
    "n_fires": ({"type": "integer"}, "held-out tokens where the neuron fires"),
}
"""Each score of a neuron: its JSON Schema type and what it means (copied into
``index.json``'s ``fields`` and the schema's descriptions)."""

STAT_FIELDS = {"max": "largest activation", "min": "smallest activation",
               "mean": "mean activation", "std": "standard deviation",
               "kurtosis": "excess kurtosis",
               "frac_positive": "fraction of tokens with a positive activation"}

EXPLANATION_TEXT = {
    "text": "the judge's explanation as a sentence (token texts JSON-quoted); for a dead neuron "
            "'never fires'",
    "kind": "token, folded, prev_token, bigram, next_token, class, regex or source; null if "
            "there is none",
    "role": "what the kind says about the neuron (paper §6.3): token, detokenization, "
            "retokenization or abstract",
    "values": "the kind's values as the judge stores them: token ids (token, prev_token, "
              "next_token), [previous id, id] pairs (bigram), folded texts (folded), or one "
              "class/regex/source name",
    "tokens": "the texts of the token ids in values (pairs for bigram), as top_examples "
              "shows tokens; null for the other kinds",
}

EXAMPLE_TEXT = {
    "activation": "the neuron's activation at the firing token (the harvested value)",
    "tokens": "the context window's tokens, each token's own text (bytes of an incomplete "
              "UTF-8 character as \\xNN escapes; <|endoftext|> as itself)",
    "activations": "the neuron's activation at every token of the window (recomputed)",
    "focus_index": "index into tokens of the firing token",
    "source": "the corpus source of the firing token",
    "row": "row of the validation split (a row is <|endoftext|> then n_ctx - 1 corpus tokens)",
    "column": "column of the firing token in its row (>= 1; column 0 is <|endoftext|>)",
}


def _obj(properties: dict[str, dict[str, Any]], description: str = "") -> dict[str, Any]:
    out = {"type": "object", "required": sorted(properties), "properties": properties}
    if description:
        out["description"] = description
    return out


def _described(schema: dict[str, Any], text: str) -> dict[str, Any]:
    return {**schema, "description": text}


def neuron_json_schemas() -> dict[str, dict[str, Any]]:
    """JSON Schemas (draft 2020-12) of ``index.json`` and ``layer_<L>.json``, keyed by the file
    names they are written as."""
    dialect = "https://json-schema.org/draft/2020-12/schema"
    string_or_null = {"type": ["string", "null"]}
    explanation = _obj({
        "text": _described({"type": "string"}, EXPLANATION_TEXT["text"]),
        "kind": _described(string_or_null, EXPLANATION_TEXT["kind"]),
        "role": _described(string_or_null, EXPLANATION_TEXT["role"]),
        "values": _described({"type": ["array", "null"]}, EXPLANATION_TEXT["values"]),
        "tokens": _described({"type": ["array", "null"]}, EXPLANATION_TEXT["tokens"]),
    }, "the judge's best explanation of the neuron (chosen on the selection rows)")
    scores = _obj({k: _described(s, text) for k, (s, text) in SCORE_FIELDS.items()},
                  "the judge's scores (index.json fields gives the same meanings)")
    example = _obj({
        "activation": _described({"type": "number"}, EXAMPLE_TEXT["activation"]),
        "tokens": _described({"type": "array", "items": {"type": "string"}},
                             EXAMPLE_TEXT["tokens"]),
        "activations": _described({"type": "array", "items": {"type": "number"}},
                                  EXAMPLE_TEXT["activations"]),
        "focus_index": _described({"type": "integer", "minimum": 0}, EXAMPLE_TEXT["focus_index"]),
        "source": _described({"type": "string"}, EXAMPLE_TEXT["source"]),
        "row": _described({"type": "integer", "minimum": 0}, EXAMPLE_TEXT["row"]),
        "column": _described({"type": "integer", "minimum": 1}, EXAMPLE_TEXT["column"]),
    })
    stats = _obj({k: _described(NUM_OR_NULL, text) for k, text in STAT_FIELDS.items()},
                 "the neuron's activation over every harvested token (selection rows)")
    neuron = _obj({
        "index": _described({"type": "integer", "minimum": 0}, "the neuron's index in its layer"),
        "stats": stats,
        "explanation": explanation,
        "scores": scores,
        "top_examples": _described({"type": "array", "items": example},
                                   "the strongest firings on the selection rows, one per row, "
                                   "strongest first (the judge counts those above top_floor x "
                                   "max)"),
    })
    layer = {"$schema": dialect, "title": "solu-repro neuron-json layer file",
             **_obj({
                 "format": {"const": NEURON_JSON_FORMAT},
                 "schema_version": {"const": NEURON_JSON_VERSION},
                 "model": _described({"type": "string"}, "the run's name"),
                 "layer": {"type": "integer", "minimum": 0},
                 "hook_name": _described({"type": "string"}, "the activation these neurons "
                                         "are read at (TransformerLens name)"),
                 "neurons": {"type": "array", "items": neuron},
             })}
    layer_entry = _obj({"layer": {"type": "integer", "minimum": 0},
                        "file": {"type": "string"}, "hook_name": {"type": "string"},
                        "n_neurons": {"type": "integer", "minimum": 0},
                        "interpretable": _described({"type": "integer"}, "neurons the "
                                                    "judge calls interpretable"),
                        "fraction": {"type": "number"},
                        "lo": _described({"type": "number"}, "95% Wilson interval of fraction"),
                        "hi": {"type": "number"},
                        "spectrum_fraction": _described({"type": "number"}, "fraction "
                                                        "spectrum_interpretable")})
    index = {"$schema": dialect, "title": "solu-repro neuron-json index",
             **_obj({
                 "format": {"const": NEURON_JSON_FORMAT},
                 "schema_version": {"const": NEURON_JSON_VERSION},
                 "schemas": {"type": "object"},
                 "model": _obj({"name": {"type": "string"}, "scale": {"type": "string"},
                                "step": {"type": ["integer", "null"]},
                                "act_fn": {"type": "string"},
                                "n_layers": {"type": "integer"}, "d_mlp": {"type": "integer"},
                                "n_ctx": {"type": "integer"}, "d_vocab": {"type": "integer"},
                                "config": _described({"type": "object"},
                                                     "solu_repro's ModelConfig")}),
                 "hook": _described({"enum": ["mid", "post"]},
                                    "mid: the MLP activation the paper interprets (SoLU before "
                                    "its extra LayerNorm); post: after it"),
                 "corpus": _obj({"data_hash": {"type": ["string", "null"]},
                                 "split": {"type": "string"},
                                 "selection_rows": {"type": "string"},
                                 "heldout_rows": {"type": "string"},
                                 "n_selection_tokens": {"type": "integer"},
                                 "n_heldout_tokens": {"type": "integer"},
                                 "bos_id": {"type": "integer"}}),
                 "judge": _obj({"description": {"type": "string"},
                                "settings": {"type": "object"}}),
                 "fields": _described({"type": "object", "additionalProperties":
                                       {"type": "string"}}, "what each field means"),
                 "layers": {"type": "array", "items": layer_entry},
                 "provenance": {"type": "object"},
             })}
    return {"index.schema.json": index, "layer.schema.json": layer}


def _f32(x: float) -> float | None:
    """A float32 value as the shortest decimal that reads back as the same float32; None
    for NaN, infinities as None too (JSON has neither; the field descriptions say what null
    means)."""
    x = float(x)
    if not math.isfinite(x):
        return None
    return float(str(np.float32(x)))


def _num(x: float) -> float | None:
    """A float64 score as JSON: None for NaN and infinities."""
    x = float(x)
    return x if math.isfinite(x) else None


def _explanation(record, tokenizer) -> dict[str, Any]:
    from .data import decode_tokens

    e = record.explanation_obj()
    if e is None:
        return {"text": record.text, "kind": None, "role": None, "values": None, "tokens": None}
    values = [list(v) if isinstance(v, tuple) else v for v in e.values]
    tokens = None
    if e.kind in ("token", "prev_token", "next_token"):
        tokens = decode_tokens(tokenizer, [int(v) for v in e.values])
    elif e.kind == "bigram":
        tokens = [decode_tokens(tokenizer, [int(a), int(b)]) for a, b in e.values]
    return {"text": record.text, "kind": e.kind, "role": e.role, "values": values,
            "tokens": tokens}


def _scores(record) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, (schema, _) in SCORE_FIELDS.items():
        value = (record.spectrum_interpretable if name == "spectrum_interpretable"
                 else getattr(record, name))
        if schema.get("type") == "boolean":
            out[name] = bool(value)
        elif schema.get("type") == "integer":
            out[name] = int(value)
        else:
            out[name] = _num(value)
    return out


def _windows(model, corpus, h, layers: list[int], hook: str, k: int | None, left: int,
             right: int, batch_size: int, device: str,
             progress: bool) -> dict[tuple[int, int], list[dict[str, Any]]]:
    """Every neuron's top examples as context windows: ``(layer, neuron) -> [example]``.

    What ``interp.view.neuron_snippets`` gives one neuron at a time (the same rows, columns
    ``[col - left, col + right]`` clipped to ``[1, n_ctx - 1]``, the same check that the
    recomputed firing matches the harvested value), but each row of the split is run once for
    all neurons of all layers: one neuron at a time cost about 0.4 s per neuron on the cpu
    zoo's 1L model (4 minutes for its 512 neurons), this a single pass over the rows.
    """
    import torch

    from .data import decode_tokens, get_rows
    from .interp.harvest import HarvestError
    from .interp.view import _MATCH_ATOL, _MATCH_RTOL, _check_pairing

    _check_pairing(model, corpus, h)
    n_ctx = h.n_ctx
    split = corpus.split(h.meta.get("split", "val"))
    texts = decode_tokens(corpus.tokenizer, range(corpus.tokenizer.get_vocab_size()))
    wanted: dict[int, list[tuple[int, int, int, Any]]] = {}  # row -> (layer, neuron, i, example)
    out: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for layer in layers:
        for n in range(h.d_mlp):
            examples = h.top_examples(layer, n, hook, k)
            out[(layer, n)] = [None] * len(examples)
            for i, e in enumerate(examples):
                wanted.setdefault(e.row, []).append((layer, n, i, e))
    rows = np.array(sorted(wanted), dtype=np.int64)
    names = [act_name(hook, layer) for layer in layers]
    batches = range(0, len(rows), batch_size)
    if progress:
        from tqdm.auto import tqdm
        batches = tqdm(batches, desc="windows", unit="batch")
    for start in batches:
        batch = rows[start:start + batch_size]
        tokens = get_rows(split, batch, n_ctx, corpus.bos_id)
        with torch.inference_mode():
            _, cache = model.run_with_cache(tokens.to(device), names=names, return_logits=False)
        acts = {layer: cache[act_name(hook, layer)].float().cpu().numpy() for layer in layers}
        ids = tokens.numpy()
        for b, row in enumerate(batch.tolist()):
            for layer, n, i, e in wanted[row]:
                if not 1 <= e.col < n_ctx:
                    raise HarvestError(f"example column {e.col} is outside [1, {n_ctx}): not a "
                                       "firing of this harvest")
                recomputed = float(acts[layer][b, e.col, n])
                if abs(recomputed - e.value) > _MATCH_ATOL + _MATCH_RTOL * abs(e.value):
                    raise HarvestError(
                        f"L{layer}N{n} at row {row}, column {e.col}: the harvest recorded "
                        f"{e.value:.6g} but the model gives {recomputed:.6g}; the harvest was "
                        "made with another model, corpus or hook")
                lo, hi = max(1, e.col - left), min(n_ctx - 1, e.col + right)
                out[(layer, n)][i] = {
                    "activation": _f32(e.value),
                    "tokens": [texts[t] for t in ids[b, lo:hi + 1]],
                    "activations": [_f32(a) for a in acts[layer][b, lo:hi + 1, n]],
                    "focus_index": e.col - lo,
                    "source": split.source_of(e.position(n_ctx)),
                    "row": int(row), "column": int(e.col)}
    return out


def _layer_document(run, corpus, h, scores, layer: int, hook: str,
                    windows: dict[tuple[int, int], list[dict[str, Any]]]) -> dict[str, Any]:
    stats = {name: h.stat(name, hook)[layer].tolist() for name in STAT_FIELDS}
    neurons = []
    for n in range(h.d_mlp):
        record = scores.get(layer, n)
        neurons.append({
            "index": n,
            "stats": {name: _f32(stats[name][n]) for name in STAT_FIELDS},
            "explanation": _explanation(record, corpus.tokenizer),
            "scores": _scores(record),
            "top_examples": windows[(layer, n)],
        })
    return {"format": NEURON_JSON_FORMAT, "schema_version": NEURON_JSON_VERSION,
            "model": run.name, "layer": layer, "hook_name": act_name(hook, layer),
            "neurons": neurons}


JUDGE_TEXT = ("solu_repro.interp.score: for each neuron, the explanation (from a fixed family "
              "of simple rules) covering most of its top firings on the selection rows (even "
              "rows of the validation split), measured on the top firings of the held-out rows "
              "(odd rows), and over every held-out token (precision, recall, correlation)")


def export_neuron_json(run: zoo.ZooRun, out: str | Path, *, settings=None, k: int = 20,
                       left: int = 32, right: int = 8, batch_size: int = 16,
                       device: str = "cpu", progress: bool = True,
                       data_dir: str | Path | None = None, force: bool = False) -> Path:
    """Write every neuron's top examples, explanation and scores (module docstring) at ``out``.

    The harvest and scores are ``score_run``'s cached ones for ``settings`` and ``k``
    (computed and cached first if missing, as ``solu-repro score`` would).

    Args:
        settings: ``ScoreSettings`` (None: the defaults, those of ``solu-repro score``); its
            ``hook`` is the one exported, its ``k`` the number of top examples per neuron.
        k: top firings the harvest keeps.
        left, right: tokens of context shown before and after each firing.

    Raises:
        ExportError: a destination that must not be written.
        CheckpointError, DataError, HarvestError: the run's weights, corpus or cached
            results are missing or damaged (each names its fix).
    """
    from .interp.harvest import harvest_run
    from .interp.score import ScoreSettings, score_run

    settings = settings or ScoreSettings()
    out = Path(out)
    check_destination(out, force)
    scores = score_run(run, settings, k=k, batch_size=batch_size, device=device,
                       progress=progress, data_dir=data_dir)
    h = harvest_run(run, k=k, batch_size=batch_size, device=device, progress=progress,
                    data_dir=data_dir)  # the one score_run scored: cached
    model = run.load_model(device).eval()
    corpus = run.corpus(data_dir)
    hook = settings.hook
    by_layer = scores.by_layer()
    windows = _windows(model, corpus, h, [int(row["layer"]) for row in by_layer], hook,
                       settings.k, left, right, batch_size, device, progress)
    files, layers = {}, []
    for row in by_layer:
        layer = int(row["layer"])
        files[layer] = _layer_document(run, corpus, h, scores, layer, hook, windows)
        layers.append({"layer": layer, "file": f"layer_{layer}.json",
                       "hook_name": act_name(hook, layer), "n_neurons": int(row["n"]),
                       "interpretable": int(row["interpretable"]),
                       **{key: _num(row[key]) for key in ("fraction", "lo", "hi",
                                                          "spectrum_fraction")}})
    cfg = run.config.model
    info = provenance(run, "neuron-json")
    index = {
        "format": NEURON_JSON_FORMAT, "schema_version": NEURON_JSON_VERSION,
        "schemas": {"index": "index.schema.json", "layer": "layer.schema.json"},
        "model": {"name": run.name, "scale": run.scale, "step": run.step, "act_fn": cfg.act_fn,
                  "n_layers": cfg.n_layers, "d_mlp": cfg.d_mlp, "n_ctx": cfg.n_ctx,
                  "d_vocab": cfg.d_vocab, "config": cfg.to_dict()},
        "hook": hook,
        "corpus": {"data_hash": run.result.get("data_hash"), "split": h.meta.get("split", "val"),
                   "selection_rows": h.meta["rows"], "heldout_rows": settings.heldout_rows,
                   "n_selection_tokens": h.n_tokens,
                   "n_heldout_tokens": int(scores.meta.get("n_heldout_tokens", 0)),
                   "bos_id": int(corpus.bos_id)},
        "judge": {"description": JUDGE_TEXT, "settings": asdict(settings)},
        "fields": {**{f"stats.{k_}": v for k_, v in STAT_FIELDS.items()},
                   **{f"explanation.{k_}": v for k_, v in EXPLANATION_TEXT.items()},
                   **{f"scores.{k_}": text for k_, (_, text) in SCORE_FIELDS.items()},
                   **{f"top_examples[].{k_}": v for k_, v in EXAMPLE_TEXT.items()}},
        "layers": layers,
        "provenance": info,
    }
    with _staged(out, force) as d:
        for layer, doc in files.items():
            _write_json(d / f"layer_{layer}.json", doc, indent=None)
        for name, schema in neuron_json_schemas().items():
            write_json(d / name, schema)
        _write_json(d / "index.json", index)
        _write_json(d / PROVENANCE_FILE, info)
    return out

