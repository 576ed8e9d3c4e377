"""The released SoLU/GELU models, offline: ``solu_repro.pretrained``.

Stand-ins (tests/released_layout.py) are real TransformerLens models, perturbed, saved in the
released layout (``config.json`` with TL's keys, ``<name>_final.pth``), some put in a
Hugging Face cache under the real repository ids. Each loaded model is compared with TL's
``HookedTransformer`` built by TL's own code from the same files: its config by TL's
``convert_neel_model_config`` (reading the cached ``config.json``), its weights by
``load_and_process_state_dict`` (after TL's ``convert_neel_solu_old_weights`` for the old Pile
layout). Sockets are closed for the whole module: nothing here may reach the network.
"""

from __future__ import annotations

import json
import os
import pickle
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformer_lens")
try:  # the stand-ins are built and checked with TL 3.x's classes, which TL 4.0 removed
    from transformer_lens import HookedTransformer  # noqa: F401
except ImportError:
    pytest.skip("these tests build TransformerLens 3.x's HookedTransformer, which the "
                "installed TL 4 removed (load_tl_model itself needs no TL; tests/test_interop.py "
                "covers TL 4)", allow_module_level=True)

from released_layout import (hf_cache_entry, make_hooked, save_released,  # noqa: E402
                             tokenizer_entry)

from solu_repro.data.tokenizer import save_tokenizer, train_tokenizer  # noqa: E402
from solu_repro.pretrained import (ALIASES, PretrainedError, load_tl_model,  # noqa: E402
                                   published_run, resolve)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SOLU_1L = "NeelNanda/SoLU_1L512W_C4_Code"
GELU_1L = "NeelNanda/GELU_1L512W_C4_Code"
TOKENIZER_REPO = "NeelNanda/gpt-neox-tokenizer-digits"
N_CTX = 32


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any attempt to open an internet socket fails the test."""
    real = socket.socket.connect

    def guarded(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            raise AssertionError(f"a test tried to reach the network: {address}")
        return real(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def corpus_texts(n: int = 80) -> list[str]:
    words = ("the cat sat on a mat and the dog ran in the park while it rained; "
             "def add(x, y):\n    return x + y\n\nclass Point:\n    pass\n").split(" ")
    return [" ".join(words[(i * 7 + j) % len(words)] for j in range(300)) + f" doc {i}."
            for i in range(n)]


@pytest.fixture(scope="module")
def tokenizer_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    save_tokenizer(train_tokenizer(corpus_texts(), 320, progress=False), path)
    return path


@pytest.fixture(scope="module")
def vocab(tokenizer_file) -> int:
    from solu_repro.data.tokenizer import load_tokenizer
    return load_tokenizer(tokenizer_file).get_vocab_size()


@pytest.fixture(scope="module")
def text_glob(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("texts")
    for i, text in enumerate(corpus_texts()):
        (folder / f"doc{i:03d}.txt").write_text(text)
    return f"files:{folder}/*.txt"


def tl_reference(snapshot: Path, repo_id: str, cache: Path, process: bool = False):
    """TL's HookedTransformer from the cached files, built by TL's own loading code."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig
    from transformer_lens import loading_from_pretrained as loading

    cfg_dict = loading.convert_neel_model_config(repo_id, cache_dir=str(cache))
    cfg_dict["model_name"] = repo_id.split("/")[-1]
    if process:
        cfg_dict["normalization_type"] = "LNPre"  # as from_pretrained(fold_ln=True) does
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ht = HookedTransformer(HookedTransformerConfig(**cfg_dict))
    [pth] = snapshot.glob("*final.pth")
    sd = torch.load(pth, map_location="cpu", weights_only=True)
    if ht.cfg.original_architecture == "neel-solu-old":
        sd = loading.convert_neel_solu_old_weights(sd, ht.cfg)
    ht.load_and_process_state_dict(sd, fold_ln=process, center_writing_weights=process,
                                   center_unembed=process, fold_value_biases=process)
    return ht.eval()


def tokens(vocab: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab, (3, N_CTX), generator=gen)


def assert_same(model, ht, vocab: int) -> None:
    """Equal logits and every MLP hook (and the residual stream) to float rounding."""
    toks = tokens(vocab)
    with torch.no_grad():
        theirs_logits, theirs = ht.run_with_cache(toks)
        ours_logits, ours = model.run_with_cache(toks)
    scale = max(1.0, theirs_logits.abs().max().item())
    assert (ours_logits - theirs_logits).abs().max().item() <= 1e-4 * scale
    hooks = [f"blocks.{layer}.mlp.hook_{h}" for layer in range(model.cfg.n_layers)
             for h in ("pre", "mid", "post") if f"blocks.{layer}.mlp.hook_{h}" in theirs.cache_dict]
    hooks += [f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"]
    assert len(hooks) >= 2 * model.cfg.n_layers + 1
    for hook in hooks:
        a, b = ours[hook], theirs[hook]
        assert a.shape == b.shape, hook
        assert (a - b).abs().max().item() <= 1e-4 * max(1.0, b.abs().max().item()), hook


@pytest.mark.parametrize("act_fn", ["solu_ln", "gelu"])
@pytest.mark.parametrize("fold_ln", [False, True], ids=["raw", "fold_ln"])
def test_loaded_model_equals_transformer_lens_built_from_the_same_files(
        act_fn, fold_ln, tokenizer_file, vocab, tmp_path):
    repo = SOLU_1L if act_fn == "solu_ln" else GELU_1L
    ht = make_hooked(act_fn, 2, vocab, fold_ln=fold_ln, n_ctx=N_CTX)
    src = save_released(ht, tmp_path / "src", repo.split("/")[1], tokenizer_file=tokenizer_file)
    cache = tmp_path / "hub"
    snapshot = hf_cache_entry(cache, repo, src)
    alias = {"solu_ln": "solu-1l", "gelu": "gelu-1l"}[act_fn]
    assert ALIASES[alias] == repo
    model, tokenizer = load_tl_model("tl:" + alias, cache_dir=cache)
    assert model.cfg.act_fn == act_fn and model.cfg.n_layers == 2 and model.cfg.pos_embed == "learned"
    assert tokenizer.get_vocab_size() == vocab
    reference = tl_reference(snapshot, repo, cache)
    assert reference.cfg.normalization_type == ("LNPre" if fold_ln else "LN")
    assert_same(model, reference, vocab)
    # The same function as TL's default from_pretrained processing (fold_ln, centring): equal
    # log-probabilities and MLP activations before the output.
    processed = tl_reference(snapshot, repo, cache, process=True)
    toks = tokens(vocab, 1)
    with torch.no_grad():
        theirs_logits, theirs = processed.run_with_cache(toks)
        ours_logits, ours = model.run_with_cache(toks)
    assert torch.allclose(ours_logits.log_softmax(-1), theirs_logits.log_softmax(-1), atol=1e-4)
    for layer in range(2):
        hook = f"blocks.{layer}.mlp.hook_{'mid' if act_fn == 'solu_ln' else 'post'}"
        assert torch.allclose(ours[hook], theirs[hook], atol=1e-4), hook


def test_a_wrong_weight_is_caught_by_the_comparison(tokenizer_file, vocab, tmp_path):
    """Negative control: the comparison fails when one LayerNorm weight differs."""
    ht = make_hooked("solu_ln", 1, vocab, n_ctx=N_CTX)
    src = save_released(ht, tmp_path / "src", "SoLU_1L512W_C4_Code", tokenizer_file=tokenizer_file)
    model, _ = load_tl_model(str(src))
    with torch.no_grad():
        model.blocks[0].mlp.act.ln.w[3] += 0.5
    with pytest.raises(AssertionError):
        assert_same(model, ht, vocab)


def test_the_alias_the_repo_id_and_the_snapshot_directory_load_offline(
        tokenizer_file, vocab, tmp_path):
    """No tokenizer.json beside the model: it comes from the cached tokenizer repository that
    config.json names, as for the real models."""
    ht = make_hooked("solu_ln", 1, vocab, n_ctx=N_CTX)
    src = save_released(ht, tmp_path / "src", "SoLU_1L512W_C4_Code",
                        tokenizer_name=TOKENIZER_REPO)
    cache = tmp_path / "hub"
    snapshot = hf_cache_entry(cache, SOLU_1L, src)
    tokenizer_entry(cache, TOKENIZER_REPO, tokenizer_file)
    for source in ("solu-1l", "tl:solu-1l", "tl:solu-1l-c4-code", SOLU_1L, str(snapshot)):
        released = resolve(source, cache)
        assert released.name == "solu-1l" and released.architecture == "neel", source
        assert released.tokenizer_file.parent.parent.parent.name == \
            "models--NeelNanda--gpt-neox-tokenizer-digits"
    model, tokenizer = load_tl_model("tl:solu-1l", cache_dir=cache)
    assert_same(model, ht, vocab)
    assert tokenizer.token_to_id("<|endoftext|>") == 0


def test_a_model_missing_from_the_cache_names_the_download_command(tmp_path):
    with pytest.raises(PretrainedError, match=r"solu-repro download tl:gelu-2l"):
        load_tl_model("gelu-2l", cache_dir=tmp_path / "empty-hub")
    with pytest.raises(PretrainedError, match="neither a local directory"):
        load_tl_model("solu-99l", cache_dir=tmp_path)


class _RunsCode:
    def __reduce__(self):
        return (os.system, (f"touch {_RunsCode.marker}",))


def test_a_pickle_that_would_run_code_is_refused(tokenizer_file, vocab, tmp_path):
    ht = make_hooked("gelu", 1, vocab, n_ctx=N_CTX)
    src = save_released(ht, tmp_path / "src", "GELU_1L512W_C4_Code", tokenizer_file=tokenizer_file)
    [pth] = src.glob("*final.pth")
    _RunsCode.marker = tmp_path / "pwned"
    torch.save({"embed.W_E": torch.zeros(2), "payload": _RunsCode()}, pth)
    with pytest.raises(PretrainedError, match="refused to load .*run code"):
        load_tl_model(str(src))
    assert not _RunsCode.marker.exists()
    # A pickled object that is not a tensor dict is refused the same way.
    with open(pth, "wb") as f:
        pickle.dump(torch.nn.Linear(2, 2), f)
    with pytest.raises(PretrainedError, match="refused to load"):
        load_tl_model(str(src))
    pth.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(PretrainedError, match="damaged or incomplete"):
        load_tl_model(str(src))


@pytest.mark.parametrize("n_layers,repo", [(2, "NeelNanda/SoLU_2L_v10_old"),
                                           (8, "NeelNanda/SoLU_8L_v21_old")])
def test_the_old_pile_layout_is_undone_exactly(n_layers, repo, tokenizer_file, vocab, tmp_path):
    """Old Pile layout: ``norm`` names, transposed weights (all up to 6 layers, W_pos alone at
    8). Stand-ins without the final RMS norm (the real 2-layer one has it and is refused)."""
    ht = make_hooked("solu_ln", n_layers, vocab, n_ctx=N_CTX, d_model=16, d_mlp=32, n_heads=2)
    src = save_released(ht, tmp_path / "src", repo.split("/")[1], tokenizer_file=tokenizer_file,
                        old=True)
    [pth] = src.glob("*final.pth")
    raw = torch.load(pth, weights_only=True)
    assert "norm.w" in raw and "blocks.0.norm1.w" in raw and "ln_final.w" not in raw
    cache = tmp_path / "hub"
    snapshot = hf_cache_entry(cache, repo, src)
    model, _ = load_tl_model(repo, cache_dir=cache)
    reference = tl_reference(snapshot, repo, cache)
    assert reference.cfg.original_architecture == "neel-solu-old"
    assert_same(model, reference, vocab)
    assert_same(model, ht, vocab)
    # The same files in a directory whose name does not say "_old": told by the "norm" keys.
    plain, _ = load_tl_model(str(save_released(ht, tmp_path / "plain", "model",
                                               tokenizer_file=tokenizer_file, old=True)))
    assert_same(plain, ht, vocab)


def test_an_affine_free_pile_model_with_a_square_w_pos_in_a_plain_directory(
        tokenizer_file, vocab, tmp_path):
    """The hardest old layout to spot: solu-8l-pile is LNPre (no "norm" keys) and its W_pos
    is square (n_ctx = d_model = 1024), so neither a key nor a shape gives the transposition
    away; the Pile tokenizer its config names does."""
    ht = make_hooked("solu_ln", 8, vocab, fold_ln=True, n_ctx=N_CTX, d_model=N_CTX, d_mlp=64,
                     n_heads=4, d_head=8)
    assert ht.cfg.normalization_type == "LNPre"
    src = save_released(ht, tmp_path / "solu-8l-pile", "model", tokenizer_file=tokenizer_file,
                        tokenizer_name="EleutherAI/gpt-neox-20b", old=True)
    raw = torch.load(next(src.glob("*final.pth")), weights_only=True)
    assert not any("norm" in k or "ln" in k for k in raw)
    assert raw["pos_embed.W_pos"].shape[0] == raw["pos_embed.W_pos"].shape[1]
    model, _ = load_tl_model(str(src))
    assert_same(model, ht, vocab)


def test_config_values_tl_would_not_read_the_same_way_are_refused(tokenizer_file, vocab,
                                                                 tmp_path):
    ht = make_hooked("gelu", 1, vocab, n_ctx=N_CTX)
    src = save_released(ht, tmp_path / "src", "GELU_1L512W_C4_Code", tokenizer_file=tokenizer_file)
    config = json.loads((src / "config.json").read_text())
    for change, message in (({"final_rms": "false"}, "must be true, false or null"),
                            ({"act_fn": "gelu_ln"}, "activation is 'gelu_ln'"),
                            ({"normalization": "RMS"}, "normalization is 'RMS'")):
        (src / "config.json").write_text(json.dumps({**config, **change}))
        with pytest.raises(PretrainedError, match=message):
            load_tl_model(str(src))
    del config["normalization"]
    (src / "config.json").write_text(json.dumps(config))
    with pytest.raises(PretrainedError, match="neither 'normalization'"):
        load_tl_model(str(src))
    # null flags are false (TL reads them the same way); an eps TL ignores is ignored too
    (src / "config.json").write_text(json.dumps({**config, "normalization": "LN",
                                                 "final_rms": None, "eps": 1e-3}))
    model, _ = load_tl_model(str(src))
    assert model.cfg.ln_eps == 1e-5
    assert_same(model, ht, vocab)


def test_a_final_rms_norm_is_refused_naming_the_model(tokenizer_file, vocab, tmp_path):
    ht = make_hooked("solu_ln", 1, vocab, n_ctx=N_CTX)
    src = save_released(ht, tmp_path / "src", "SoLU_1L_v9_old", tokenizer_file=tokenizer_file,
                        old=True, extra_config={"final_rms": True})
    cache = tmp_path / "hub"
    hf_cache_entry(cache, "NeelNanda/SoLU_1L_v9_old", src)
    with pytest.raises(PretrainedError, match=r"cannot load solu-1l-pile exactly: .*RMS norm"):
        load_tl_model("tl:solu-1l-pile", cache_dir=cache)
    config = json.loads((src / "config.json").read_text())
    (src / "config.json").write_text(json.dumps({**config, "final_rms": False,
                                                 "attn_only": True}))
    with pytest.raises(PretrainedError, match="attention-only"):
        load_tl_model(str(src))


def test_shapes_that_disagree_with_config_json_are_refused(tokenizer_file, vocab, tmp_path):
    ht = make_hooked("gelu", 1, vocab, n_ctx=N_CTX)
    src = save_released(ht, tmp_path / "src", "GELU_1L512W_C4_Code", tokenizer_file=tokenizer_file,
                        extra_config={"d_mlp": 128})
    with pytest.raises(PretrainedError, match=r"shapes differ from its config.json: .*W_in"):
        load_tl_model(str(src))


@pytest.mark.slow
def test_harvest_and_score_through_the_cli_offline(tokenizer_file, vocab, text_glob, tmp_path):
    """``solu-repro harvest|score --model tl:...``, in a subprocess with only the local cache
    (``HF_HUB_CACHE``, ``HF_HUB_OFFLINE=1``), on a corpus tokenised with the model's own
    tokenizer."""
    cache = tmp_path / "hub"
    for repo, act in ((SOLU_1L, "solu_ln"), (GELU_1L, "gelu")):
        ht = make_hooked(act, 1, vocab, n_ctx=N_CTX)
        hf_cache_entry(cache, repo, save_released(ht, tmp_path / act, repo.split("/")[1],
                                                  tokenizer_name=TOKENIZER_REPO))
    tokenizer_entry(cache, TOKENIZER_REPO, tokenizer_file)
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1",
           "OMP_NUM_THREADS": "1"}
    dirs = ["--runs-dir", str(tmp_path / "runs"), "--data-dir", str(tmp_path / "data")]
    base = [sys.executable, "-m", "solu_repro.cli"]
    harvest = subprocess.run(base + ["harvest", "--model", "tl:solu-1l", "--sources", text_glob,
                                     "--quiet"] + dirs,
                             env=env, capture_output=True, text=True, timeout=600)
    assert harvest.returncode == 0, harvest.stderr
    assert "tl:solu-1l" in harvest.stdout and "1 x 64 neurons" in harvest.stdout
    score = subprocess.run(base + ["score", "--model", "tl:solu-1l", "--model", "tl:gelu-1l",
                                   "--sources", text_glob, "--quiet", "--json"] + dirs,
                           env=env, capture_output=True, text=True, timeout=600)
    assert score.returncode == 0, score.stderr
    by_layer = json.loads(score.stdout)
    assert set(by_layer) == {"tl:solu-1l", "tl:gelu-1l"}
    for rows in by_layer.values():
        [row] = rows
        assert row["layer"] == 0 and row["n"] == 64
    # The results are cached beside the models' own run directories, keyed by their weights.
    assert list((tmp_path / "runs" / "published").glob("solu-1l-*/interp/harvest-*"))
    # The corpus was tokenised with the model's tokenizer (copied into the corpus).
    [corpus_dir] = [p for p in (tmp_path / "data").iterdir() if p.is_dir()]
    assert (corpus_dir / "tokenizer.json").read_bytes() == tokenizer_file.read_bytes()
    missing = subprocess.run(base + ["score", "--model", "tl:gelu-3l", "--quiet"] + dirs,
                             env=env, capture_output=True, text=True, timeout=600)
    assert missing.returncode == 2 and "solu-repro download tl:gelu-3l" in missing.stderr


def test_a_published_run_matches_the_loader(tokenizer_file, vocab, text_glob, tmp_path):
    ht = make_hooked("gelu", 1, vocab, n_ctx=N_CTX)
    src = save_released(ht, tmp_path / "src", "GELU_1L512W_C4_Code", tokenizer_file=tokenizer_file)
    run = published_run(f"tl:{src}", tmp_path / "runs", (text_glob,))
    assert run.name == "tl:src" and run.config.model.act_fn == "gelu"
    corpus = run.corpus(tmp_path / "data")
    assert corpus.bos_id == 0 and len(corpus.split("val")) > N_CTX
    model, _ = load_tl_model(str(src))
    assert all(torch.equal(a, b) for a, b in zip(run.load_model().state_dict().values(),
                                                 model.state_dict().values()))


RELEASED_CHAPTERS = {
    "04-interpretability-quantitative.ipynb": ("released_measurements", ["rotated basis",
                                                                         "untrained model",
                                                                         "SoLU readout of GELU",
                                                                         "difference of the two"]),
    "05-one-layer-neurons.ipynb": ("measure_one_layer", ["interpretable", "random"]),
    "06-neurons-across-layers.ipynb": ("measure_layers", ["§6.3.2"]),
    "07-layernorm.ipynb": ("s6_4.measure", ["Released SoLU-LN"]),
}
DEPTH = {"06-neurons-across-layers.ipynb": 2}  # the other chapters: the one-layer pair
REPOS = {1: (SOLU_1L, GELU_1L), 2: ("NeelNanda/SoLU_2L512W_C4_Code", "NeelNanda/GELU_2L512W_C4_Code")}


@pytest.mark.slow
@pytest.mark.parametrize("chapter", sorted(RELEASED_CHAPTERS))
def test_chapter_runs_end_to_end_on_released_models(chapter, tiny_zoo, tokenizer_file, vocab,
                                                    text_glob, tmp_path, monkeypatch):
    """Chapter 4 (and 5-7) with ``models=["tl:solu-1l", "tl:gelu-1l"]`` (chapter 6: the 2-layer
    pair): stand-ins in the released layout in a local Hugging Face cache, the kernel offline
    (``HF_HUB_OFFLINE=1``)."""
    import nbformat
    import papermill

    depth = DEPTH.get(chapter, 1)
    cache = tmp_path / "hub"
    for repo, act in zip(REPOS[depth], ("solu_ln", "gelu")):
        ht = make_hooked(act, depth, vocab, n_ctx=N_CTX, seed=3)
        hf_cache_entry(cache, repo, save_released(ht, tmp_path / act, repo.split("/")[1],
                                                  tokenizer_name=TOKENIZER_REPO))
    tokenizer_entry(cache, TOKENIZER_REPO, tokenizer_file)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    notebook = Path(__file__).resolve().parents[1] / "notebooks" / chapter
    executed = tmp_path / chapter
    papermill.execute_notebook(
        notebook, executed, kernel_name="python3", cwd=notebook.parent, progress_bar=False,
        parameters=dict(scale="tiny", runs_dir=str(tiny_zoo), interactive=False, progress=False,
                        models=[f"tl:solu-{depth}l", f"tl:gelu-{depth}l"],
                        published_sources=[text_glob]))
    nb = nbformat.read(executed, as_version=4)
    function, expected = RELEASED_CHAPTERS[chapter]
    [cell] = [c for c in nb.cells if c.cell_type == "code" and function in c.source
              and "published" in c.source]
    text = "\n".join(str(o.get("text", "")) + json.dumps(o.get("data", {})) for o in cell.outputs)
    assert f"tl:solu-{depth}l" in text and f"tl:gelu-{depth}l" in text  # the sources table
    assert "No released models named" not in text
    for phrase in expected:
        assert phrase in text, phrase
    if chapter.startswith("04"):
        figures = [o for o in cell.outputs if "application/vnd.plotly.v1+json" in o.get("data", {})]
        assert len(figures) == 1
        names = {t.get("name") for t in figures[0]["data"]["application/vnd.plotly.v1+json"]["data"]}
        assert {"SoLU + LN", "GELU baseline", "SoLU + LN, rotated basis",
                "GELU baseline, untrained model"} <= names
    assert list((tiny_zoo / "published").glob(f"solu-{depth}l-*/controls/*" if chapter.startswith(
        "04") else f"solu-{depth}l-*/interp/*"))


@pytest.mark.slow
def test_the_models_parameter_is_checked(tiny_zoo, tmp_path, monkeypatch):
    import huggingface_hub.constants

    from solu_repro.book import book_context
    from solu_repro.book.context import ParameterError

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty"))

    ctx = book_context("tiny", runs_dir=tiny_zoo, progress=False)
    assert ctx.published([]) is None
    with pytest.raises(ParameterError, match=r"tl:<alias>"):
        ctx.published(["solu-1l"])
    with pytest.raises(ParameterError, match=r"models=.*solu-repro download tl:solu-2l"):
        ctx.published(["tl:solu-2l"])
    with pytest.raises(ParameterError, match="list"):
        ctx.published([3])


def test_a_blind_session_on_released_models_judges_and_unblinds(tokenizer_file, vocab,
                                                                text_glob, tmp_path):
    """``solu-repro blind --models tl:<dir> tl:<dir> --sources ...``: the session keeps its
    corpus, resumes with it, and unblinds to the released models' names."""
    import argparse

    from solu_repro.interp.blind import BlindSession, add_blind_arguments, run_blind_cli

    dirs = []
    for act in ("solu_ln", "gelu"):
        ht = make_hooked(act, 1, vocab, n_ctx=N_CTX)
        dirs.append(save_released(ht, tmp_path / act, act, tokenizer_file=tokenizer_file))
    parser = argparse.ArgumentParser()
    add_blind_arguments(parser)
    session = tmp_path / "session"
    common = ["--session", str(session), "--runs-dir", str(tmp_path / "runs"),
              "--data-dir", str(tmp_path / "data"), "--evaluator", "ann", "--no-color"]
    models = [f"tl:{d}" for d in dirs]
    answers = iter(["i", "", "n", "q"])

    def script(prompt):
        try:
            return next(answers)
        except StopIteration:
            raise EOFError from None

    out = []
    args = parser.parse_args(common + ["--models", *models, "--n", "2", "--sources", text_glob])
    assert run_blind_cli(args, script, out.append) == 0
    s = BlindSession.open(session)
    assert s.models == models and s.meta["sources"] == [text_glob]
    assert [j.judgment for j in s.judgments] == ["interpretable", "not_interpretable"]
    shown = "\n".join(map(str, out))
    assert not any(m in shown or d.name in shown for m, d in zip(models, dirs))  # blind
    answers = iter(["i", "", "n"])
    assert run_blind_cli(parser.parse_args(common), script, out.append) == 0
    assert len(BlindSession.open(session).judged("ann")) == 4
    with pytest.raises(Exception, match="keeps its corpus"):
        run_blind_cli(parser.parse_args(common + ["--sources", "default"]), script, out.append)
    report = []
    run_blind_cli(parser.parse_args(["--session", str(session), "--unblind"]), script,
                  report.append)
    assert all(m in report[0] for m in models)


def test_download_offline_reuses_the_cache_or_says_what_it_needs(tokenizer_file, vocab,
                                                                 tmp_path, monkeypatch):
    import huggingface_hub.constants

    from solu_repro.pretrained import download

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(PretrainedError, match="needs internet access"):
        download("tl:gelu-1l", cache_dir=tmp_path / "hub")
    ht = make_hooked("gelu", 1, vocab, n_ctx=N_CTX)
    src = save_released(ht, tmp_path / "src", "GELU_1L512W_C4_Code", tokenizer_file=tokenizer_file)
    hf_cache_entry(tmp_path / "hub", GELU_1L, src)
    released = download("tl:gelu-1l", cache_dir=tmp_path / "hub")  # already there: no download
    assert released.name == "gelu-1l" and released.weights.name.endswith("final.pth")
