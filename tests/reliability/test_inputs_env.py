"""Issue 23, part C: inputs that cannot escape, environment failures in one line, concurrency.

Each test reproduces one failure a tester found at the tiny scale and holds after the fix:

* a ``files:`` glob through a symlink loop duplicated documents (and put validation documents
  in training); two loops never finished;
* a run ``name`` with a path in it wrote the run outside the runs folder;
* a read-only or full disk, ``--device cuda`` without a GPU, ``--threads 0`` and a notebook
  ``runs_dir`` that cannot be written ended in tracebacks (``score`` only after the whole
  harvest); a zoo worker's failure read "rerun to resume the rest" whatever its cause;
* the zoo's worker processes outlived a killed parent; two ``score`` runs on one run both
  did the work.

The tests run as root here, where ``chmod`` does not stop a write: a folder that cannot be
written is a path under a regular file (ENOTDIR, a real failure on any machine), and
read-only (EROFS), permission (EACCES) and full-disk (ENOSPC, EDQUOT) failures are raised by
monkeypatching the call that would fail. The chmod test runs only as a regular user.
"""

from __future__ import annotations

import errno
import glob
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
import torch

from solu_repro import cli, paths, zoo
from solu_repro.data import DataSpec, build_dataset, corpus_summary
from solu_repro.data.sources import parse_source
from solu_repro.model import ConfigError, ModelConfig
from solu_repro.train import TrainConfig, train

ROOT = os.geteuid() == 0


def _one_error_line(err: str, command: str) -> str:
    """The command's error line; fails if it printed a traceback instead."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith(f"solu-repro {command}: error:")]
    assert len(lines) == 1, err
    return lines[0]


# --- 1. files: globs and symlink loops --------------------------------------------------------
def _texts(folder: Path, n: int = 5) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (folder / f"doc{i}.txt").write_text(f"document {i}: " + "words of text " * (20 + i))


def test_a_symlink_loop_does_not_repeat_documents(tmp_path):
    """Before: 5 files behind a link to their parent gave 205 documents."""
    _texts(tmp_path / "L" / "a")
    os.symlink("..", tmp_path / "L" / "a" / "up")
    source = parse_source(f"files:{tmp_path}/L/**/*.txt")
    docs = list(source.documents())
    assert len(docs) == 5
    assert sorted(d.doc_id for d in docs) == sorted(
        (tmp_path / "L" / "a" / f"doc{i}.txt").as_posix() for i in range(5))


def test_a_symlink_loop_cannot_leak_validation_into_training(tmp_path):
    _texts(tmp_path / "L" / "a", n=12)
    os.symlink("..", tmp_path / "L" / "a" / "up")
    spec = DataSpec(sources=(f"files:{tmp_path}/L/**/*.txt",), vocab_size=300,
                    val_fraction=0.3)
    corpus = build_dataset(spec, tmp_path / "data", progress=False)
    splits = corpus_summary(corpus)["splits"]
    assert splits["train"]["n_docs"] + splits["val"]["n_docs"] == 12
    assert splits["val"]["n_docs"] >= 1


def test_two_symlink_loops_finish(tmp_path):
    """Before: two loops made the glob branch at every level and never finished."""
    _texts(tmp_path / "L" / "a" / "b")
    os.symlink("..", tmp_path / "L" / "a" / "up")
    os.symlink("../..", tmp_path / "L" / "a" / "b" / "up2")
    code = ("from solu_repro.data.sources import parse_source; "
            f"print(len(list(parse_source('files:{tmp_path}/L/**/*.txt').documents())))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "5"


def test_duplicate_files_are_dropped_and_counted(tmp_path, capsys):
    _texts(tmp_path / "c")
    (tmp_path / "c" / "copy.txt").write_bytes((tmp_path / "c" / "doc3.txt").read_bytes())
    os.symlink("doc1.txt", tmp_path / "c" / "alias.txt")
    source = parse_source(f"files:{tmp_path}/c/*.txt")
    docs = list(source.documents())
    assert len(docs) == 5 and len({d.text for d in docs}) == 5
    ids = {Path(d.doc_id).name for d in docs}
    assert "doc1.txt" in ids and "alias.txt" not in ids  # the file itself, not the link
    assert source.linked_duplicates == 1 and source.content_duplicates == 1
    assert "dropped 2 duplicate file(s)" in capsys.readouterr().err


def test_ordinary_globs_keep_their_document_ids(tmp_path, monkeypatch):
    """A document's id decides its split: a glob without links or copies must give the ids
    Python's glob gave, or every user's corpus would be split anew."""
    for folder in ("t", "t/a", "t/a/b", "t/.hidden", "t/d"):
        _texts(tmp_path / folder, n=2)
        (tmp_path / folder / "x.jsonl").write_text(json.dumps({"text": folder}) + "\n")
    monkeypatch.chdir(tmp_path)
    for pattern in ("t/**/*.txt", "t/*", "t/**", "./t/**/*.jsonl", "t/*/b/*",
                    f"{tmp_path}/t/**/*.txt", "t/**/.*/*", "t/[ad]/doc?.txt"):
        before = sorted(Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
        assert parse_source(f"files:{pattern}").paths() == before, pattern


# --- 2. run names -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["/abs/x", "../../../x", "a/b", "..", ".hidden", "x\0y",
                                  "n" * 101, "with space"])
def test_run_names_cannot_leave_the_runs_folder(name):
    model = ModelConfig(n_layers=1, d_model=32, n_heads=2, d_head=16, d_mlp=64, d_vocab=300,
                        n_ctx=32)
    with pytest.raises(ConfigError, match="is not a run name: use up to 100 letters"):
        TrainConfig(model=model, name=name)


def test_cli_refuses_a_name_with_a_path(tmp_path, small_config, capsys):
    """Before: both wrote an `x-<hash>` folder where the name pointed."""
    runs = tmp_path / "deep" / "er" / "runs"
    target = tmp_path / "escaped"
    assert cli.main(["train", "1L-gelu", "--scale", "tiny", "--set", f"name={target}/x",
                     "--runs-dir", str(runs)]) == 2
    assert "is not a run name" in _one_error_line(capsys.readouterr().err, "train")
    config = tmp_path / "mine.json"
    config.write_text(json.dumps({**small_config().to_dict(), "name": "../../../x"}))
    assert cli.main(["train", str(config), "--runs-dir", str(runs)]) == 2
    line = _one_error_line(capsys.readouterr().err, "train")
    assert "'../../../x'" in line and "--set name=" in line
    assert not target.exists() and not list(tmp_path.glob("x-*"))
    assert not list(tmp_path.glob("deep/x-*"))


# --- 3. the environment -----------------------------------------------------------------------
def _never(*args, **kwargs):
    raise AssertionError("work started before the folder was checked")


def test_unwritable_runs_folder_is_reported_before_any_work(tmp_path, monkeypatch, capsys):
    """Before: `score` computed the whole harvest, then failed with a traceback."""
    (tmp_path / "a-file").write_text("not a folder")
    monkeypatch.setattr(zoo, "train_zoo", _never)
    monkeypatch.setattr(cli, "build_dataset", _never)
    for argv, command in ((["score", "--scale", "tiny"], "score"),
                          (["harvest", "--scale", "tiny"], "harvest"),
                          (["zoo", "--scale", "tiny"], "zoo"),
                          (["train", "1L-gelu", "--scale", "tiny"], "train")):
        assert cli.main(argv + ["--runs-dir", str(tmp_path / "a-file" / "runs")]) == 2
        line = _one_error_line(capsys.readouterr().err, command)
        assert str(tmp_path / "a-file" / "runs") in line and "--runs-dir DIR" in line
    assert cli.main(["data", "--data-dir", str(tmp_path / "a-file" / "d")]) == 2
    assert "--data-dir DIR" in _one_error_line(capsys.readouterr().err, "data")


@pytest.mark.parametrize("code, words, fix", [
    (errno.EROFS, "Read-only file system", "with a folder you can write"),
    (errno.EACCES, "Permission denied", "with a folder you can write"),
    (errno.ENOSPC, "No space left on device", "free space on that disk"),
])
def test_a_folder_that_refuses_the_probe(code, words, fix, tmp_path, monkeypatch, capsys):
    def refuse(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(paths.tempfile, "mkstemp", refuse)
    monkeypatch.setattr(zoo, "train_zoo", _never)
    assert cli.main(["score", "--scale", "tiny", "--runs-dir", str(tmp_path / "r")]) == 2
    line = _one_error_line(capsys.readouterr().err, "score")
    assert f"cannot write to {tmp_path / 'r'} ({words})" in line and fix in line


def _as_nobody(fn) -> str:
    """``fn()``'s text, computed in a forked child that gave up root (uid/gid 65534): as root
    chmod blocks nothing, so a read-only folder is only read-only to another user."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no imports needed, the parent's modules are already loaded
        code = 1
        try:
            os.close(read)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            os.write(write, str(fn()).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read) as f:
        text = f.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, text
    return text


def test_a_read_only_runs_folder(capsys):
    """A real read-only folder (chmod 0555), no monkeypatching: as root, the check runs in a
    child that dropped to an ordinary user."""
    import tempfile

    top = Path(tempfile.mkdtemp(prefix="solu-ro-"))  # /tmp: any user may reach it
    try:
        top.chmod(0o755)
        runs = top / "runs"
        runs.mkdir()
        runs.chmod(0o555)
        if ROOT:
            assert _as_nobody(lambda: paths.writable_problem(runs)) == "Permission denied"
            assert paths.writable_problem(runs) is None  # root itself may write
        else:
            assert cli.main(["score", "--scale", "tiny", "--runs-dir", str(runs)]) == 2
            line = _one_error_line(capsys.readouterr().err, "score")
            assert "Permission denied" in line and "--runs-dir DIR" in line
    finally:
        import shutil

        (top / "runs").chmod(0o755)
        shutil.rmtree(top, ignore_errors=True)


@pytest.mark.parametrize("code, fix", [
    (errno.ENOSPC, "free space on that disk"), (errno.EDQUOT, "free space on that disk"),
    (errno.EROFS, "on a writable disk"), (errno.EACCES, "fix its permissions"),
])
def test_a_disk_failing_during_the_work_is_one_line(code, fix, tmp_path, monkeypatch, capsys):
    """ENOSPC (or a folder turning read-only) in the middle of a command: before, a
    traceback."""
    data = tmp_path / "data"

    def fail(spec, data_dir, **kwargs):
        raise OSError(code, os.strerror(code), str(data / "abc" / "train" / "shard.bin"))

    monkeypatch.setattr(cli, "build_dataset", fail)
    assert cli.main(["data", "--data-dir", str(data)]) == 2
    line = _one_error_line(capsys.readouterr().err, "data")
    assert str(data / "abc" / "train" / "shard.bin") in line and os.strerror(code) in line
    assert fix in line and "--data-dir" in line


class SafetensorError(Exception):
    """What safetensors raises when its write fails (its class has this name)."""


def test_a_full_disk_under_a_library_error_is_one_line(tmp_path, monkeypatch, capsys):
    """safetensors reports ENOSPC as "(os error 28)" in its own exception; an OSError may be
    the cause of another error. Before: tracebacks."""
    def safetensors_full(*args, **kwargs):
        raise SafetensorError("Error while serializing: I/O error: No space left on device "
                              "(os error 28)")

    def wrapped(*args, **kwargs):
        try:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(tmp_path / "d" / "x"))
        except OSError as exc:
            raise ValueError("could not save") from exc

    full = (f"cannot write under {tmp_path / 'd'}: No space left on device; free space on "
            "that disk")
    read_only = (f"cannot write {tmp_path / 'd' / 'x'}: Read-only file system; pass --data-dir "
                 "DIR on a writable disk")
    for fail, words in ((safetensors_full, full), (wrapped, read_only)):
        monkeypatch.setattr(cli, "build_dataset", fail)
        assert cli.main(["data", "--data-dir", str(tmp_path / "d")]) == 2
        assert words in _one_error_line(capsys.readouterr().err, "data")


def test_other_os_errors_are_not_hidden(monkeypatch):
    def fail(*args, **kwargs):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(cli, "build_dataset", fail)
    with pytest.raises(OSError, match="Input/output"):
        cli.main(["data"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
@pytest.mark.parametrize("command", ["score", "harvest"])
def test_cuda_without_a_gpu_is_refused_up_front(command, capsys):
    """Before: a traceback about pin_memory once the harvest began."""
    with pytest.raises(SystemExit) as exc:
        cli.main([command, "--scale", "tiny", "--device", "cuda"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "no CUDA GPU is visible" in err and "use --device cpu" in err


@pytest.mark.parametrize("argv, words", [
    (["score", "--device", "gpu0"], "'gpu0' is not a device"),
    (["score", "--device", "cuda:x"], "is not a device"),
    (["zoo", "--threads", "0"], "--threads: must be a positive integer, got '0'"),
    (["zoo", "--threads", "-2"], "must be a positive integer"),
    (["zoo", "--threads", "two"], "must be a positive integer"),
])
def test_malformed_device_and_threads(argv, words, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err


def test_notebook_runs_dir_that_cannot_be_written(tmp_path):
    from solu_repro.book.context import ParameterError, book_context

    (tmp_path / "a-file").write_text("")
    with pytest.raises(ParameterError, match=r"parameter runs_dir=.* cannot be written .*"
                                             r"papermill"):
        book_context(scale="tiny", runs_dir=str(tmp_path / "a-file" / "runs"))
    assert book_context(scale="tiny", runs_dir=str(tmp_path / "new")).runs_dir.is_dir()


def _fake_children(script: str):
    """``subprocess.Popen`` whose zoo children run ``script`` instead of training."""
    real = subprocess.Popen

    def popen(cmd, **kwargs):
        if cmd[1:3] == ["-m", "solu_repro.cli"]:
            cmd = [sys.executable, "-c", script]
        return real(cmd, **kwargs)

    return popen


def test_a_worker_failure_says_what_failed(tmp_path, data_dir, monkeypatch, capsys):
    """Before: "... -- finished runs are kept; rerun to resume the rest", whatever the
    child's error, and a RuntimeError traceback from the parent."""
    child_error = ("solu-repro zoo: error: cannot write /r/x/model.safetensors: No space left "
                   "on device; free space on that disk")
    script = f"import sys; print('Traceback...', file=sys.stderr); " \
             f"print({child_error!r}, file=sys.stderr); sys.exit(2)"
    monkeypatch.setattr(subprocess, "Popen", _fake_children(script))
    assert cli.main(["zoo", "--scale", "tiny", "--workers", "2", "--quiet", "--only", "1L-gelu",
                     "1L-solu_ln", "--runs-dir", str(tmp_path), "--data-dir",
                     str(data_dir)]) == 2
    line = _one_error_line(capsys.readouterr().err, "zoo")
    assert ("1L-gelu, 1L-solu_ln: cannot write /r/x/model.safetensors: No space left on device"
            in line)
    assert "rerun to resume" not in line


def test_a_worker_killed_by_a_signal_says_so(tmp_path, data_dir, monkeypatch):
    monkeypatch.setattr(subprocess, "Popen",
                        _fake_children("import os, signal; os.kill(os.getpid(), signal.SIGKILL)"))
    with pytest.raises(zoo.ZooWorkerError, match="stopped by SIGKILL .* resumes the rest"):
        zoo._train_in_processes("tiny", ["1L-gelu", "1L-solu_ln"], 2, tmp_path, data_dir,
                                progress=False)


# --- 4. concurrency ---------------------------------------------------------------------------
def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _pending(pid: int, sig: int) -> bool:
    """Whether ``sig`` waits to be delivered to the (stopped) process ``pid``, or the process is
    already gone (Linux: the pending-signal masks in /proc/PID/status)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except FileNotFoundError:
        return True
    masks = [int(line.split()[1], 16) for line in lines
             if line.startswith(("SigPnd:", "ShdPnd:"))]
    return any(mask >> (sig - 1) & 1 for mask in masks)


def _poll(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_zoo_workers_die_with_their_parent(sig, tmp_path, data_dir):
    """Before: SIGKILL to `solu-repro zoo --workers 2` left both children training."""
    runs = tmp_path / "runs"
    with open(tmp_path / "out", "w") as out:
        parent = subprocess.Popen(
            [sys.executable, "-m", "solu_repro.cli", "zoo", "--scale", "tiny", "--workers", "2",
             "--quiet", "--runs-dir", str(runs), "--data-dir", str(data_dir)],
            stdout=out, stderr=subprocess.STDOUT)
    children: list[int] = []
    try:
        def training() -> bool:
            assert parent.poll() is None, (tmp_path / "out").read_text()
            children[:] = [c.pid for c in psutil.Process(parent.pid).children()]
            return len(children) == 2 and any(runs.glob("*/*/metrics.jsonl"))

        _poll(training, 300, "two children training")
        # Freeze the children, so that on a slow machine no model can finish between the
        # signal and its effect; each resumes only once its stop signal is pending: SIGTERM
        # from the kernel when the parent was killed outright (PR_SET_PDEATHSIG), Ctrl-C from
        # the parent when it was told to stop.
        for pid in children:
            os.kill(pid, signal.SIGSTOP)
        frozen = sorted(runs.glob("*/*/result.json"))
        assert len(frozen) < len(zoo.zoo_configs("tiny"))
        parent.send_signal(sig)
        expected = signal.SIGTERM if sig == signal.SIGKILL else signal.SIGINT
        for pid in children:
            _poll(lambda: _pending(pid, expected), 60, f"signal {expected!r} sent to {pid}")
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        _poll(lambda: all(_gone(pid) for pid in children), 60, "the children to stop")
        code = parent.wait(timeout=60)
        assert code == (-signal.SIGKILL if sig == signal.SIGKILL else 130)
        # they were stopped, not done: no model finished after the signal
        assert sorted(runs.glob("*/*/result.json")) == frozen
    finally:
        for pid in [parent.pid, *children]:
            if not _gone(pid):
                os.kill(pid, signal.SIGKILL)
        parent.wait(timeout=30)


def _tiny_run(small_config, data_dir, tmp_path):
    cfg = small_config(max_steps=2, eval_every=0, final_eval_rows=8, checkpoint_every=2)
    result = train(cfg, tmp_path / "run", progress=False, data_dir=data_dir)
    return zoo.ZooRun("1L-test", "tiny", cfg, tmp_path / "run", result)


def test_two_scorers_of_one_run_score_it_once(small_config, data_dir, tmp_path, monkeypatch):
    """Before: both did the whole work. Now the second waits for the first's lock, then loads
    its scores."""
    from solu_repro.interp import harvest as harvest_module
    from solu_repro.interp import score as score_module
    from solu_repro.interp.score import NeuronScores, ScoreSettings, score_run

    run = _tiny_run(small_config, data_dir, tmp_path)
    calls, second_waits = [], threading.Event()
    results: dict[str, object] = {}
    errors: list[BaseException] = []

    def scorer(key):
        try:
            results[key] = score_run(run, ScoreSettings(max_heldout_rows=16), progress=False,
                                     data_dir=data_dir)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    second = threading.Thread(target=scorer, args=("second",))

    def score_neurons(*args, meta, **kwargs):
        calls.append(threading.current_thread().name)
        if len(calls) == 1:  # the first scorer, mid-work: start the second and let it queue
            second.start()
            second_waits.wait(timeout=60)
        return NeuronScores(meta, [])

    real_waiting = getattr(harvest_module, "_waiting", print)

    def waiting(path):
        real_waiting(path)
        second_waits.set()

    monkeypatch.setattr(score_module, "score_neurons", score_neurons)
    monkeypatch.setattr(harvest_module, "_waiting", waiting, raising=False)
    first = threading.Thread(target=scorer, args=("first",))
    first.start()
    first.join(120)
    second.join(120)
    assert not errors, errors
    assert second_waits.is_set(), "the second scorer did not wait for the first"
    assert len(calls) == 1, calls
    assert results["first"].meta == results["second"].meta


def test_a_rebuild_reuses_a_result_made_while_it_waited(tmp_path, monkeypatch):
    """`--rebuild` asked while another process was rebuilding: that new result is reused."""
    from solu_repro.interp import harvest as harvest_module
    from solu_repro.interp.harvest import cached, result_lock

    path = tmp_path / "r.json"
    path.write_text("old")
    computed = []

    def compute():
        computed.append(1)
        path.write_text("new")
        return "new"

    holding, release = threading.Event(), threading.Event()

    def other_process():
        with result_lock(path):
            holding.set()
            release.wait(60)
            path.write_text("theirs")
            os.utime(path, ns=(time.time_ns() + 10**9,) * 2)  # a newer stamp on any fs

    monkeypatch.setattr(harvest_module, "_waiting", lambda p: release.set())
    t = threading.Thread(target=other_process)
    t.start()
    holding.wait(60)
    assert cached(path, True, lambda p: p.read_text(), compute) == "theirs"
    t.join()
    assert not computed
    assert cached(path, True, lambda p: p.read_text(), compute) == "new" and computed
