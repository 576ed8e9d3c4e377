"""`solu-repro export`: both formats read back by code that is not ours.

* transformer-lens: exported models (every activation, both position embeddings, weights
  perturbed off their init so a wrong mapping shows) are loaded by the README's lines in a
  separate Python process in which ``import solu_repro`` fails, and give our logits and MLP
  hooks; a negative control shows TL's weight processing changes what the README says it does.
* neuron-json: an export of a trained run is read with ``json`` alone, validated against the
  JSON Schemas it ships, and compared with the cached harvest and scores it was made from.
* the destination rules, the refusals and the one-line errors of the command.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from fakes import neuron_record

from solu_repro import cli, zoo
from solu_repro.export import (
    PROVENANCE_FILE,
    ExportError,
    _explanation,
    _staged,
    check_destination,
    export_neuron_json,
    export_transformer_lens,
    neuron_json_schemas,
    resolve_run,
    tl_load_code,
)
from solu_repro.integrity import file_digest
from solu_repro.model import ModelConfig, Transformer
from solu_repro.train import TrainConfig, train
from solu_repro.train.checkpoint import save_weights

SMALL_DATA = zoo.SCALES["tiny"].data  # the session corpus (conftest)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SHAPE = dict(n_layers=2, d_model=32, n_heads=4, d_head=8, d_mlp=48,
             d_vocab=SMALL_DATA.vocab_size, n_ctx=16)
ACT_FNS = ("gelu", "solu", "solu_ln", "gelu_ln")
POS_EMBEDS = ("learned", "rotary")


def train_config(name: str = "export-test", **model) -> TrainConfig:
    cfg = ModelConfig(**{**dict(n_layers=1, d_model=32, n_heads=2, d_head=16, d_mlp=64,
                                d_vocab=SMALL_DATA.vocab_size, n_ctx=32, act_fn="solu_ln"),
                         **model})
    return TrainConfig(model=cfg, data=SMALL_DATA, name=name, batch_size=8, max_steps=12,
                       warmup_steps=2, eval_every=6, eval_rows=8, final_eval_rows=32,
                       checkpoint_every=4, log_every=2, precision="fp32")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_dir) -> Path:
    """A finished run directory of a small 1-layer SoLU-LN model (a dozen steps)."""
    run_dir = tmp_path_factory.mktemp("runs") / "custom" / "export-test"
    train(train_config(), run_dir, progress=False, data_dir=data_dir)
    return run_dir


@torch.no_grad()
def perturb(model: Transformer, seed: int) -> None:
    """Every parameter random and O(1) (LayerNorm weights 1 + noise, biases noise), so a
    misplaced or transposed tensor changes the logits (as in tests/test_interop.py)."""
    gen = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        z = torch.randn(p.shape, generator=gen)
        leaf = name.rsplit(".", 1)[-1]
        if leaf == "w":
            p.copy_(1 + 0.3 * z)
        elif leaf.startswith("b"):
            p.copy_(0.3 * z)
        elif leaf in ("W_E", "W_pos"):
            p.copy_(z)
        else:
            fan_in = p.shape[0] * p.shape[1] if leaf == "W_O" else p.shape[0]
            p.copy_(2 * z / math.sqrt(fan_in))


def fake_run(root: Path, act_fn: str, pos_embed: str, tokenizer_file: Path,
             blocks: int = 1) -> zoo.ZooRun:
    """A run directory holding a perturbed model's weights (written by ``save_weights``)."""
    cfg = train_config(f"{act_fn}-{pos_embed}", act_fn=act_fn, pos_embed=pos_embed,
                       solu_blocks=blocks, **SHAPE)
    run_dir = root / cfg.name
    run_dir.mkdir(parents=True)
    model = Transformer(cfg.model)
    perturb(model, seed=len(cfg.name))
    save_weights(model, run_dir / "model.safetensors")
    (run_dir / "config.json").write_text(json.dumps(cfg.to_dict()))
    shutil.copyfile(tokenizer_file, run_dir / "tokenizer.json")
    return zoo.ZooRun(cfg.name, "custom", cfg, run_dir, {})


# What a TransformerLens user runs: the README's lines, with solu_repro unimportable. argv:
# the tokens, where to write the results, a JSON list of {name, code, hooks: {ours: TL's}}.
READER = textwrap.dedent("""
    import json, sys, warnings
    sys.modules["solu_repro"] = None  # any import of our package now fails
    warnings.filterwarnings("ignore")
    import torch
    from importlib.metadata import version
    from safetensors.torch import load_file, save_file
    import transformer_lens
    tokens = load_file(sys.argv[1])["tokens"]
    out = {}
    for spec in json.loads(open(sys.argv[3]).read()):
        name, scope = spec["name"], {}
        exec(spec["code"], scope)
        model = (scope.get("model") or scope["bridge"]).to("cpu").eval()
        with torch.no_grad():
            logits, cache = model.run_with_cache(tokens)
        out[f"{name}/logits"] = logits
        for ours, theirs in spec["hooks"].items():
            out[f"{name}/{ours}"] = cache[theirs]
        if spec.get("process"):  # the negative control: TL's weight processing
            model.process_weights_()
            with torch.no_grad():
                logits, cache = model.run_with_cache(tokens)
            out["processed/logits"] = logits
            out["processed/blocks.0.mlp.hook_post"] = cache["blocks.0.mlp.hook_post"]
    save_file({k: v.clone() for k, v in out.items()}, sys.argv[2],
              metadata={"transformer_lens": transformer_lens.__file__,
                        "version": version("transformer-lens")})
""")
TL4_SITE = Path(os.environ.get("SOLU_TL4_SITE") or Path(sys.prefix) / "tl4")  # as test_interop_tl4


@pytest.fixture(scope="module")
def tl_runs(tmp_path_factory, data_dir):
    """Every activation x position embedding as a run, exported: ``{name: (run, folder)}``."""
    root = tmp_path_factory.mktemp("tl-export")
    tokenizer_file = next(Path(data_dir).glob("*/tokenizer.json"))
    exported = {}
    for act in ACT_FNS:
        for pos in POS_EMBEDS:
            run = fake_run(root / "runs", act, pos, tokenizer_file)
            exported[run.name] = run, export_transformer_lens(run, root / "out" / run.name)
    return exported


TOKENS = torch.randint(0, SHAPE["d_vocab"], (3, SHAPE["n_ctx"]),
                       generator=torch.Generator().manual_seed(0))
MLP_HOOKS = [f"blocks.{layer}.mlp.hook_{h}" for layer in range(SHAPE["n_layers"])
             for h in ("pre", "mid", "post")]


def run_reader(root: Path, specs: list[dict], env: dict | None = None) -> tuple[dict, str]:
    """``READER``'s results for ``specs`` and the TransformerLens version it imported."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    root.mkdir(parents=True, exist_ok=True)
    save_file({"tokens": TOKENS}, str(root / "tokens.safetensors"))
    (root / "specs.json").write_text(json.dumps(specs))
    (root / "reader.py").write_text(READER)
    # -s, not -I: -I would also drop PYTHONPATH, which puts TL 4 first
    done = subprocess.run([sys.executable, "-s", str(root / "reader.py"),
                           str(root / "tokens.safetensors"), str(root / "loaded.safetensors"),
                           str(root / "specs.json")],
                          capture_output=True, text=True, cwd=root, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    with safe_open(str(root / "loaded.safetensors"), framework="pt") as f:
        version = f.metadata()["version"]
    return load_file(str(root / "loaded.safetensors")), version


@pytest.fixture(scope="module")
def tl3_loaded(tl_runs, tmp_path_factory):
    """What the README's TL 3 lines computed with every export, without solu_repro."""
    pytest.importorskip("transformer_lens")
    from solu_repro.interop import tl_hook_name

    specs = [{"name": name, "code": tl_load_code(out, run.config.model.act_fn),
              "hooks": {h: tl_hook_name(h, run.config.model.act_fn, 3) for h in MLP_HOOKS},
              "process": name == "solu_ln-learned"}
             for name, (run, out) in tl_runs.items()]
    loaded, version = run_reader(tmp_path_factory.mktemp("tl3-reader"), specs)
    assert version.startswith("3.")
    return loaded


@pytest.fixture(scope="module")
def tl4_loaded(tl_runs, tmp_path_factory):
    """What the README's TL 4 lines computed with every export that has a TL 4 copy, in a
    process with TransformerLens 4 first on PYTHONPATH (as tests/test_interop_tl4.py)."""
    from solu_repro.interop import tl_hook_name

    if not (TL4_SITE / "transformer_lens").is_dir():
        pytest.fail(f"TransformerLens 4 is not installed in {TL4_SITE}: run `make setup` (or "
                    "set SOLU_TL4_SITE to a folder holding it)")
    specs = [{"name": name, "code": tl_load_code(out, run.config.model.act_fn, 4),
              "hooks": {h: tl_hook_name(h, run.config.model.act_fn, 4) for h in MLP_HOOKS}}
             for name, (run, out) in tl_runs.items() if (out / "tl4").is_dir()]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(TL4_SITE), os.environ.get("PYTHONPATH")) if p)}
    loaded, version = run_reader(tmp_path_factory.mktemp("tl4-reader"), specs, env)
    assert version.startswith("4."), f"the reader imported TransformerLens {version}"
    return loaded


def assert_close(ours: torch.Tensor, theirs: torch.Tensor, what: str, rel: float = 1e-5):
    scale = max(1.0, theirs.abs().max().item())
    diff = (ours - theirs).abs().max().item()
    assert diff <= rel * scale, f"{what}: max abs diff {diff:.3g} > {rel} x {scale:.3g}"


def our_outputs(run: zoo.ZooRun) -> dict[str, torch.Tensor]:
    model = run.load_model()
    with torch.no_grad():
        logits, cache = model.run_with_cache(TOKENS)
    return {"logits": logits, **{h: cache[h] for h in MLP_HOOKS}}


@pytest.mark.slow  # spawns a Python process
@pytest.mark.parametrize("act", ACT_FNS)
@pytest.mark.parametrize("pos", POS_EMBEDS)
def test_transformer_lens_3_loads_our_logits_and_hooks(tl_runs, tl3_loaded, act, pos):
    name = f"{act}-{pos}"
    for key, ours in our_outputs(tl_runs[name][0]).items():
        assert_close(ours, tl3_loaded[f"{name}/{key}"], f"{name} {key}")


@pytest.mark.slow  # spawns a Python process
@pytest.mark.parametrize("act", ACT_FNS)
@pytest.mark.parametrize("pos", POS_EMBEDS)
def test_transformer_lens_4_loads_our_logits_and_hooks(tl_runs, tl4_loaded, act, pos):
    name = f"{act}-{pos}"
    run, out = tl_runs[name]
    if act == "gelu_ln":  # TL 4 cannot compute it: no copy, and the README says why
        assert not (out / "tl4").exists() and f"{name}/logits" not in tl4_loaded
        assert "There is no TransformerLens 4 copy: act_fn='gelu_ln'" in \
            (out / "README.md").read_text()
        assert json.loads((out / PROVENANCE_FILE).read_text())["load"]["transformer_lens_4"] \
            is None
        return
    for key, ours in our_outputs(run).items():
        assert_close(ours, tl4_loaded[f"{name}/{key}"], f"{name} {key} (TL 4)")


@pytest.mark.slow  # spawns a Python process
def test_tl_weight_processing_changes_logits_not_log_probs(tl_runs, tl3_loaded):
    """Why the README says not to process the weights: the control shows the comparison
    above can fail."""
    ours = our_outputs(tl_runs["solu_ln-learned"][0])
    processed = tl3_loaded["processed/logits"]
    assert (processed - ours["logits"]).abs().max() > 1e-2
    assert_close(processed.log_softmax(-1), ours["logits"].log_softmax(-1), "log-probs", 1e-4)
    assert (tl3_loaded["processed/blocks.0.mlp.hook_post"] - ours["blocks.0.mlp.hook_post"]
            ).abs().max() > 1e-2


def test_transformer_lens_files(tl_runs):
    """config.json is exactly the HookedTransformerConfig keywords, the README's lines load
    the model (here, in this process) with our logits, only TL parameters are stored, and
    provenance records the weights' digest."""
    pytest.importorskip("transformer_lens")
    from solu_repro.interop import tl_config_dict

    run, out = tl_runs["solu_ln-rotary"]
    config = json.loads((out / "config.json").read_text())
    assert config == tl_config_dict(run.config.model)
    readme = (out / "README.md").read_text()
    code = tl_load_code(out.name, "solu_ln")
    assert code in readme
    scope: dict = {}  # the README's lines, keeping what load_state_dict returns
    exec(tl_load_code(out, "solu_ln").replace("model.load_state_dict(",
                                              "keys = model.load_state_dict("), scope)
    assert scope["keys"].unexpected_keys == []
    assert all(k.endswith(("mask", "IGNORE", "rotary_sin", "rotary_cos"))
               for k in scope["keys"].missing_keys)
    with torch.no_grad():
        assert_close(run.load_model()(TOKENS), scope["model"].to("cpu")(TOKENS), "logits")
    info = json.loads((out / PROVENANCE_FILE).read_text())
    assert info["weights"]["sha256"] == file_digest(run.weights_path)
    assert info["files"]["model.safetensors"] == file_digest(out / "model.safetensors")
    assert info["model_config"] == run.config.model.to_dict()


def test_readme_shows_the_load_lines_and_the_fields():
    """The README's Export section quotes what the code writes (so the two cannot drift)."""
    from solu_repro.export import GELU_LN_LINE, SCORE_FIELDS, STAT_FIELDS

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("## Export\n", 1)[1].split("\n## ", 1)[0]
    assert tl_load_code("DIR", "solu_ln") in section
    assert tl_load_code("DIR", "solu_ln", 4) in section
    assert GELU_LN_LINE.rsplit("; ", 1)[1] in section
    for field in [*SCORE_FIELDS, *STAT_FIELDS, "focus_index", "activations", "hook_name"]:
        assert f'"{field}"' in section, field


def test_blocked_model_is_refused(tmp_path):
    cfg = train_config("1L-solu_ln_b4", solu_blocks=4)
    run = zoo.ZooRun(cfg.name, "custom", cfg, tmp_path / "none", {})
    with pytest.raises(ExportError, match="blocked model .*solu_blocks=4.*neuron-json"):
        export_transformer_lens(run, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# --- where an export may go --------------------------------------------------------------------
def test_destination_rules(tmp_path):
    check_destination(tmp_path / "new")
    (tmp_path / "empty").mkdir()
    check_destination(tmp_path / "empty")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ExportError, match="not a folder"):
        check_destination(tmp_path / "file")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    for force in (False, True):  # --force never replaces a folder of other files
        with pytest.raises(ExportError, match="holds no earlier export"):
            check_destination(foreign, force=force)
    assert (foreign / "notes.txt").read_text() == "mine"


def test_staged_export_replaces_only_when_complete(tmp_path):
    out = tmp_path / "out"
    with _staged(out, force=False) as d:
        (d / PROVENANCE_FILE).write_text(json.dumps({"exported_by": "solu-repro", "n": 1}))
    with pytest.raises(ExportError, match="earlier export: pass --force"):
        check_destination(out)
    with pytest.raises(RuntimeError, match="boom"), _staged(out, force=True) as d:
        (d / PROVENANCE_FILE).write_text(json.dumps({"exported_by": "solu-repro", "n": 2}))
        raise RuntimeError("boom")
    assert json.loads((out / PROVENANCE_FILE).read_text())["n"] == 1  # the old one intact
    with _staged(out, force=True) as d:
        (d / PROVENANCE_FILE).write_text(json.dumps({"exported_by": "solu-repro", "n": 3}))
    assert json.loads((out / PROVENANCE_FILE).read_text())["n"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # nothing left beside it


# --- neuron-json -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def neuron_export(trained, data_dir, tmp_path_factory):
    from solu_repro.interp.harvest import harvest_run
    from solu_repro.interp.score import score_run

    run = resolve_run(str(trained))
    out = export_neuron_json(run, tmp_path_factory.mktemp("nj") / "out", progress=False,
                             data_dir=data_dir, right=4)
    scores = score_run(run, progress=False, data_dir=data_dir)  # cached by the export
    harvest = harvest_run(run, progress=False, data_dir=data_dir)
    return run, out, scores, harvest


def _no_nan(token: str):
    raise ValueError(f"{token} in an export: not JSON")


def read(path: Path):
    return json.loads(path.read_text(encoding="ascii"), parse_constant=_no_nan)


def test_neuron_json_validates_against_its_schemas(neuron_export):
    jsonschema = pytest.importorskip("jsonschema")
    _, out, _, _ = neuron_export
    index = read(out / "index.json")
    validators = {kind: jsonschema.Draft202012Validator(read(out / name))
                  for kind, name in index["schemas"].items()}
    for validator in validators.values():
        jsonschema.Draft202012Validator.check_schema(validator.schema)
    validators["index"].validate(index)
    layers = [read(out / entry["file"]) for entry in index["layers"]]
    assert [doc["layer"] for doc in layers] == list(range(index["model"]["n_layers"]))
    for doc in layers:
        validators["layer"].validate(doc)
    # the schema can fail: a neuron without scores, a NaN where a number belongs
    broken = json.loads(json.dumps(layers[0]))
    del broken["neurons"][0]["scores"]
    assert not validators["layer"].is_valid(broken)
    broken = json.loads(json.dumps(layers[0]))
    broken["neurons"][0]["top_examples"] = [{"activation": "NaN"}]
    assert not validators["layer"].is_valid(broken)
    assert neuron_json_schemas()["layer.schema.json"] == read(out / "layer.schema.json")


def test_neuron_json_holds_the_harvest_and_the_scores(neuron_export, corpus):
    from solu_repro.interp.view import neuron_snippets

    run, out, scores, harvest = neuron_export
    index = read(out / "index.json")
    assert index["model"]["name"] == run.name and index["hook"] == "mid"
    assert index["provenance"]["weights"]["sha256"] == file_digest(run.weights_path)
    assert index["corpus"]["n_selection_tokens"] == harvest.n_tokens
    assert set(index["fields"]) >= {"scores.precision", "explanation.text",
                                    "top_examples[].focus_index"}
    doc = read(out / "layer_0.json")
    assert doc["hook_name"] == "blocks.0.mlp.hook_mid"
    assert [n["index"] for n in doc["neurons"]] == list(range(harvest.d_mlp))
    assert index["layers"][0]["interpretable"] == scores.fraction_interpretable(0).successes
    model = run.load_model()
    checked_windows = 0
    for neuron in doc["neurons"]:
        n = neuron["index"]
        record = scores.get(0, n)
        assert neuron["explanation"]["text"] == record.text
        assert neuron["explanation"]["kind"] == (json.loads(record.explanation)[0]
                                                 if record.explanation else None)
        for field, value in neuron["scores"].items():
            ours = (record.spectrum_interpretable if field == "spectrum_interpretable"
                    else getattr(record, field))
            if value is None:
                assert not math.isfinite(ours), (n, field)
            else:
                assert value == ours, (n, field)
        assert np.float32(neuron["stats"]["max"]) == harvest.stat("max")[0, n].numpy()
        examples = harvest.top_examples(0, n, "mid", 20)
        got = neuron["top_examples"]
        assert [(e["row"], e["column"]) for e in got] == [(e.row, e.col) for e in examples]
        assert [np.float32(e["activation"]) for e in got] == \
            [np.float32(e.value) for e in examples]  # the float32 values, exactly
        for e in got:
            assert len(e["tokens"]) == len(e["activations"]) > e["focus_index"]
            assert abs(e["activations"][e["focus_index"]] - e["activation"]) <= 1e-4
        if n < 4 and examples:  # the same windows the book's viewer cuts
            snippets = neuron_snippets(model, corpus, harvest, 0, n, examples, "mid", 32, 4)
            assert [e["tokens"] for e in got] == [s.tokens for s in snippets]
            assert [e["focus_index"] for e in got] == [s.focus for s in snippets]
            assert [e["source"] for e in got] == [s.source for s in snippets]
            for e, s in zip(got, snippets):
                assert np.allclose(e["activations"], s.activations, atol=1e-5)
            checked_windows += 1
    assert checked_windows > 0


def test_explanation_names_its_tokens(corpus):
    from solu_repro.data import decode_tokens

    tok = corpus.tokenizer
    token = _explanation(neuron_record(0, 0, "token", (5, 17)), tok)
    assert token["values"] == [5, 17] and token["tokens"] == decode_tokens(tok, [5, 17])
    bigram = _explanation(neuron_record(0, 0, "bigram", ((5, 17),)), tok)
    assert bigram["values"] == [[5, 17]] and bigram["tokens"] == [decode_tokens(tok, [5, 17])]
    regex = _explanation(neuron_record(0, 0, "regex", ("year",)), tok)
    assert regex["kind"] == "regex" and regex["tokens"] is None and regex["role"] == "abstract"
    dead = _explanation(neuron_record(0, 0, dead=True, text="never fires"), tok)
    assert dead == {"text": "never fires", "kind": None, "role": None, "values": None,
                    "tokens": None}


# --- the command -------------------------------------------------------------------------------
def test_help(capsys):
    from solu_repro.export import FORMATS

    with pytest.raises(SystemExit) as exc:
        cli.main(["export", "--help"])
    assert exc.value.code == 0 and "{transformer-lens,neuron-json}" in capsys.readouterr().out
    assert FORMATS == ("transformer-lens", "neuron-json")  # the parser's metavar


def test_cli_exports_a_run_directory(trained, tmp_path, capsys):
    out = tmp_path / "tl"
    argv = ["export", str(trained), "--format", "transformer-lens", "--output", str(out)]
    assert cli.main(argv) == 0
    assert str(out) in capsys.readouterr().out
    assert {p.name for p in out.iterdir()} == {"config.json", "model.safetensors", "tl4",
                                               "tokenizer.json", "README.md", PROVENANCE_FILE}
    assert cli.main(argv) == 2
    assert "--force" in capsys.readouterr().err
    stamp = (out / "model.safetensors").stat().st_mtime_ns
    assert cli.main(argv + ["--force"]) == 0
    assert (out / "model.safetensors").stat().st_mtime_ns != stamp


def test_cli_bad_input_is_one_line(trained, tmp_path, capsys):
    def error(*argv) -> str:
        assert cli.main(["export", *argv, "--runs-dir", str(tmp_path / "runs")]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        return err

    assert "no model '9L-gelu' in the tiny zoo" in error("9L-gelu", "--scale", "tiny",
                                                         "--format", "neuron-json")
    assert "1L-gelu has not finished training" in error(
        "1L-gelu", "--scale", "tiny", "--format", "neuron-json")
    assert "solu-repro zoo --scale tiny --only 1L-gelu" in error(
        "1L-gelu", "--scale", "tiny", "--format", "transformer-lens")
    assert "not a run directory" in error(str(tmp_path), "--format", "transformer-lens")
    unfinished = tmp_path / "unfinished run"
    unfinished.mkdir()
    shutil.copyfile(trained / "config.json", unfinished / "config.json")
    assert (f"has not finished training ({unfinished} has no result.json): train it first with "
            f"`solu-repro train '{unfinished}/config.json' --run-dir '{unfinished}' --resume`"
            in error(str(unfinished), "--format", "neuron-json"))
    assert "kept no weights at step 7" in error(str(trained), "--step", "7", "--format",
                                                "transformer-lens")
    damaged = tmp_path / "damaged"
    shutil.copytree(trained, damaged)
    weights = damaged / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    err = error(str(damaged), "--format", "transformer-lens", "--output", str(tmp_path / "o"))
    assert "does not match the SHA-256" in err and "--retrain" in err
    assert not (tmp_path / "o").exists()
    assert "unknown export format 'onnx': use one of transformer-lens, neuron-json" in error(
        str(trained), "--format", "onnx")


@pytest.mark.slow
def test_cli_exports_a_zoo_model_by_name(tmp_path, data_dir, monkeypatch):
    runs = tmp_path / "runs"
    zoo.ensure_trained("1L-gelu", "tiny", runs, progress=False, data_dir=data_dir)
    out = tmp_path / "nj"
    assert cli.main(["export", "1L-gelu", "--scale", "tiny", "--format", "neuron-json",
                     "--hook", "post", "--runs-dir", str(runs), "--data-dir", str(data_dir),
                     "--output", str(out), "--quiet"]) == 0
    index = json.loads((out / "index.json").read_text())
    assert index["model"]["name"] == "1L-gelu" and index["hook"] == "post"
    assert index["provenance"]["run"]["scale"] == "tiny"
    assert json.loads((out / "layer_0.json").read_text())["hook_name"] == \
        "blocks.0.mlp.hook_post"
    monkeypatch.chdir(tmp_path)  # the default folder is relative to where the command runs
    assert cli.main(["export", "1L-gelu", "--scale", "tiny", "--format", "transformer-lens",
                     "--runs-dir", str(runs)]) == 0
    assert (tmp_path / "exports" / "tiny" / "1L-gelu-transformer-lens" / "config.json").is_file()
