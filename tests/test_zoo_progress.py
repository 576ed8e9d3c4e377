"""Watching a zoo train in child processes (``solu_repro.zoo_progress``): reading the runs'
files, the lines shown, and ``solu-repro zoo --workers 2`` on a terminal and in a pipe."""

from __future__ import annotations

import io
import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from solu_repro import zoo_progress as zp
from solu_repro.book.build import BuildReport


def _append(path: Path, *records: dict, end: str = "\n") -> None:
    with open(path, "a") as f:
        f.write("".join(json.dumps(r) + "\n" for r in records[:-1]) + json.dumps(records[-1])
                + end)


def _log(step: int, loss: float = 5.0, tok_s: float = 1000.0) -> dict:
    return {"step": step, "tokens": step * 100, "loss": loss, "lr": 1e-3,
            "tokens_per_s": tok_s, "grad_norm": 1.0}


# --- formatting -----------------------------------------------------------------------------
@pytest.mark.parametrize("seconds, text", [(0, "0 s"), (42.4, "42 s"), (59.6, "1 min 0 s"),
                                           (192, "3 min 12 s"), (3900, "1 h 05 min")])
def test_duration(seconds, text):
    assert zp.duration(seconds) == text


# --- reading metrics.jsonl ------------------------------------------------------------------
def test_tail_of_a_missing_file_is_empty(tmp_path):
    tail = zp.MetricsTail(tmp_path / "metrics.jsonl")
    assert tail.read() == ([], False)


def test_tail_reads_only_new_lines_and_waits_for_a_partial_last_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    tail = zp.MetricsTail(path)
    _append(path, _log(10), _log(20))
    assert [r["step"] for r in tail.read()[0]] == [10, 20]
    assert tail.read() == ([], False)
    with open(path, "a") as f:
        f.write('{"step": 30, "tokens": 3000, "lo')  # being written
    assert tail.read() == ([], False)
    with open(path, "a") as f:
        f.write('ss": 4.5}\nnot json\n')
    records, reset = tail.read()
    assert records == [{"step": 30, "tokens": 3000, "loss": 4.5}] and not reset


def test_tail_starts_over_when_a_resumed_run_cuts_the_file(tmp_path):
    path = tmp_path / "metrics.jsonl"
    tail = zp.MetricsTail(path)
    _append(path, _log(10), _log(20), _log(30))
    tail.read()
    # resume from step 10: the loop rewrites the file atomically (a new inode) ...
    tmp = tmp_path / "new"
    tmp.write_text(json.dumps(_log(10)) + "\n")
    os.replace(tmp, path)
    records, reset = tail.read()
    assert reset and [r["step"] for r in records] == [10]
    # ... or it is cut short in place
    path.write_text("")
    assert tail.read() == ([], True)
    _append(path, _log(20))
    assert [r["step"] for r in tail.read()[0]] == [20]


def test_status_follows_the_records_and_counts_down(tmp_path):
    s = zp.ModelStatus("1L-gelu", total=100, state=zp.RUNNING)
    assert zp.model_text(s, 0.0) == "0/100  starting"
    s.update([_log(10, 6.0, tok_s=500.0)], now=100.0)
    # before the step has moved twice: the log line's rate, 500 tok/s / 100 tokens a step
    assert s.steps_per_s() == pytest.approx(5.0)
    assert s.eta(100.0) == pytest.approx(90 / 5)
    s.update([_log(20, 5.5), {"step": 20, "tokens": 2000, "val_loss": 5.8}], now=102.0)
    assert s.steps_per_s() == pytest.approx(5.0)  # 10 steps in 2 s, seen by the watcher
    assert s.eta(102.0) == pytest.approx(16.0) and s.eta(106.0) == pytest.approx(12.0)
    assert s.loss == 5.5 and s.val_loss == 5.8 and s.step == 20
    assert zp.model_text(s, 106.0) == "20/100  1,000 tok/s  loss 5.500  ETA 12 s"
    assert zp.model_line(s, 106.0, width=10).startswith("1L-gelu     20/100")
    s.update([{"step": 40, "tokens": 4000, "snapshot": True, "val_loss": 5.1}], now=104.0)
    assert s.step == 40 and s.val_loss == 5.1 and s.loss == 5.5
    s.reset()  # the file started over
    assert s.step == 0 and s.loss is None and s.steps_per_s() is None


def test_finished_and_waiting_models():
    s = zp.ModelStatus("1L-solu_ln", total=120)
    assert zp.model_text(s, 0.0) == "waiting" and s.eta(0.0) is None
    s.finish({"step": 120, "tokens": 120_000, "train_seconds": 60.0, "val_loss": 4.56789})
    assert s.state == zp.DONE and s.eta(0.0) == 0.0
    assert zp.model_text(s, 0.0) == "120/120  2,000 tok/s  val loss 4.5679  trained in 1 min 0 s"
    assert zp.finished_line(s, width=12) == \
        "1L-solu_ln    trained: val loss 4.5679, 1 min 0 s of training, 2,000 tok/s"


def test_zoo_eta_adds_the_waiting_models_of_the_longest_group():
    running = zp.ModelStatus("a", total=100, cost=100.0, state=zp.RUNNING, step=50,
                             first_seen=(0.0, 10), last_seen=(4.0, 50))  # 10 steps/s
    waiting = zp.ModelStatus("b", total=100, cost=200.0)  # twice a's cost
    done = zp.ModelStatus("c", total=100, cost=100.0)
    done.finish({"step": 100, "train_seconds": 30.0})
    statuses = {"a": running, "b": waiting, "c": done}
    # a: 5 s left, 0.1 s per cost; c: 0.3 s per cost; mean 0.2 -> b takes 40 s
    assert zp.zoo_eta(statuses, [["a", "b"], ["c"]], now=4.0) == pytest.approx(45.0)
    text = zp.zoo_text(statuses, [["a", "b"], ["c"]], now=4.0, elapsed=65.0)
    assert text == "1/3 models trained  1 min 5 s so far  ETA 45 s"
    assert zp.zoo_eta({"b": waiting}, [["b"]], now=0.0) is None  # nothing measured yet
    assert zp.zoo_text({"b": waiting}, [["b"]], 0.0, 1.0).endswith("ETA ?")


def _run_dir(root: Path, name: str) -> Path:
    (root / name).mkdir(parents=True, exist_ok=True)
    return root / name


def test_watcher_runs_a_group_in_order_and_marks_failures(tmp_path):
    names = ["a", "b", "c"]
    dirs = {n: _run_dir(tmp_path, n) for n in names}
    w = zp.ZooWatcher([["a", "b"], ["c"]], dirs, {n: 100 for n in names})
    assert w.poll([True, True], now=0.0) == []
    assert [w.statuses[n].state for n in names] == [zp.RUNNING, zp.WAITING, zp.RUNNING]
    _append(dirs["a"] / "metrics.jsonl", _log(50))
    (dirs["b"] / "metrics.jsonl").write_text(json.dumps(_log(90)) + "\n")  # an old run's
    w.poll([True, True], now=1.0)
    assert w.statuses["a"].step == 50 and w.statuses["b"].step == 0
    (dirs["a"] / "result.json").write_text(json.dumps({"step": 100, "val_loss": 4.0}))
    assert w.poll([True, True], now=2.0) == ["a"]
    assert w.statuses["a"].state == zp.DONE and w.statuses["b"].state == zp.RUNNING
    assert w.statuses["b"].step == 90  # resumes from its old metrics until they are cut
    # c's child exits without finishing: c failed; a's child ends with b unfinished
    assert w.poll([False, False], now=3.0) == ["b", "c"]
    assert w.statuses["c"].state == zp.FAILED and zp.model_text(w.statuses["c"], 3.0) == \
        "0/100  failed"
    assert w.poll([False, False], now=4.0) == []  # reported once


class _FakeProc:
    """A child that writes its model's result after a few polls."""

    def __init__(self, run_dir: Path, polls: int, code: int = 0):
        self.run_dir, self.polls, self.code = run_dir, polls, code

    def poll(self):
        self.polls -= 1
        if self.polls == 1:
            _append(self.run_dir / "metrics.jsonl", _log(60))
        if self.polls > 0:
            return None
        if self.code == 0 and not (self.run_dir / "result.json").exists():
            (self.run_dir / "result.json").write_text(json.dumps(
                {"step": 120, "tokens": 12_000, "train_seconds": 6.0, "val_loss": 5.25}))
        return self.code


def _watch(tmp_path, mode):
    dirs = {n: _run_dir(tmp_path, n) for n in ("1L-gelu", "1L-solu_ln")}
    watcher = zp.ZooWatcher([["1L-gelu"], ["1L-solu_ln"]], dirs, {n: 120 for n in dirs})
    procs = [_FakeProc(dirs["1L-gelu"], 3), _FakeProc(dirs["1L-solu_ln"], 5, code=2)]
    out = io.StringIO()
    codes = zp.watch(procs, watcher, mode, stream=out, interval=0)
    return codes, out.getvalue()


def test_watch_plain_prints_a_line_per_finished_model(tmp_path):
    codes, out = _watch(tmp_path, "plain")
    assert codes == [0, 2]
    assert out.splitlines() == [
        "1L-gelu     trained: val loss 5.2500, 6 s of training, 2,000 tok/s",
        "1L-solu_ln  failed at step 60/120",
        "zoo: 1/2 models trained (1 failed) in 0 s by 2 processes"]


def test_watch_quiet_prints_nothing(tmp_path):
    assert _watch(tmp_path, "quiet") == ([0, 2], "")


def test_watch_bars_draw_a_line_per_model_and_one_for_the_zoo(tmp_path):
    _, out = _watch(tmp_path, "bars")
    final = {line.split()[0]: line for line in _screen_lines(out)}
    assert "120/120  2,000 tok/s  val loss 5.2500" in final["1L-gelu"]
    assert "60/120  failed" in final["1L-solu_ln"]
    assert "1/2 models trained (1 failed) in 0 s" in final["zoo"]


def test_bars_only_on_a_terminal_outside_ci():
    master, slave = pty.openpty()
    with os.fdopen(slave, "w") as tty:
        assert zp.use_bars(tty, {"TERM": "xterm"})
        assert not zp.use_bars(tty, {"TERM": "xterm", "CI": "true"})
        assert not zp.use_bars(tty, {"TERM": "dumb"})
        assert zp.use_bars(tty, {"CI": "0"})
    os.close(master)
    assert not zp.use_bars(io.StringIO(), {})


def test_book_stages_line():
    report = BuildReport(Path("."), seconds={"precompute": 192.0, "execute": 303.0,
                                             "vendor": 1.0, "html": 40.0})
    assert report.stages_line() == \
        "[book] precompute 3 min 12 s | notebooks 5 min 3 s | html 41 s | total 8 min 56 s"
    assert BuildReport(Path("."), seconds={"execute": 5.0}).stages_line() == \
        "[book] notebooks 5 s | total 5 s"


# --- the command line -----------------------------------------------------------------------
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
MODELS = ["1L-gelu", "1L-solu_ln", "1L-solu"]  # in 2 processes: one model waits its turn


def _screen_lines(raw: str) -> list[str]:
    """Every line drawn (each carriage-return redraw a line of its own), escapes removed."""
    return [part.strip() for line in ANSI.sub("\n", raw).split("\n")
            for part in line.split("\r") if part.strip()]


def _zoo_cmd(runs: Path, data_dir: Path) -> list[str]:
    """``solu-repro zoo --scale tiny --workers 2 --only MODELS``, polled every 0.2 s (a tiny
    model trains in a second or two on a fast machine)."""
    args = ["zoo", "--scale", "tiny", "--workers", "2", "--runs-dir", str(runs),
            "--data-dir", str(data_dir), "--only", *MODELS]
    return [sys.executable, "-c",
            "import sys; from solu_repro import cli, zoo_progress; "
            "zoo_progress.POLL_SECONDS = 0.2; sys.exit(cli.main(sys.argv[1:]))", *args]


def _env(**changes: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "TERM")}
    return {**env, **changes}


@pytest.mark.slow
def test_zoo_on_a_terminal_shows_live_lines(tmp_path, data_dir):
    """The issue's acceptance test: ``solu-repro zoo --workers 2`` on a pseudo-terminal
    draws a line per model (step of total, tokens/s, loss) and one for the zoo."""
    import fcntl
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 140, 0, 0))
    proc = subprocess.Popen(_zoo_cmd(tmp_path / "runs", data_dir), stdin=subprocess.DEVNULL,
                            stdout=slave, stderr=slave, env=_env(TERM="xterm"))
    os.close(slave)
    chunks, deadline = [], time.monotonic() + 900
    try:
        while time.monotonic() < deadline:
            if select.select([master], [], [], 1.0)[0]:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: every writer has closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
        else:
            proc.kill()
            pytest.fail("solu-repro zoo did not finish in 15 min")
    finally:
        os.close(master)
    raw = b"".join(chunks).decode(errors="replace")
    assert proc.wait(timeout=60) == 0, raw[-3000:]
    lines = _screen_lines(raw)
    for name in MODELS:
        drawn = [line for line in lines if line.startswith(name + " ")]
        assert drawn, (name, raw[-3000:])
        assert any(re.search(r"\b120/120\b.*tok/s.*val loss", line) for line in drawn), drawn
        # its training line: a step out of 120, tokens/s, the loss and the time left
        live = r"\b\d+/120  [\d,]+ tok/s  loss \d+\.\d{3}  ETA (\?|\d)"
        assert any(re.search(live, line) for line in drawn) or "waiting" in " ".join(drawn), \
            drawn
    assert any(re.search(r"\b\d+/120  [\d,]+ tok/s  loss \d+\.\d{3}  ETA", line)
               for line in lines), raw[-3000:]
    zoo_lines = [line for line in lines if line.startswith("zoo ")]
    assert len(zoo_lines) >= 2, raw[-3000:]  # redrawn while the models train
    assert any(re.search(r"\d/3 models trained .*so far  ETA", line) for line in zoo_lines)
    assert "3/3 models trained in" in zoo_lines[-1]
    assert any("waiting" in line for line in lines)  # the third model, before its turn
    assert "val loss  per source" in raw  # the table the command prints at the end


@pytest.mark.slow
def test_zoo_in_a_pipe_under_ci_prints_a_line_per_model(tmp_path, data_dir):
    proc = subprocess.run(_zoo_cmd(tmp_path / "runs", data_dir), capture_output=True,
                          text=True, env=_env(CI="1", TERM="xterm"), timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "\r" not in out and "\x1b" not in out
    finished = [line for line in out.splitlines() if " trained: val loss " in line]
    assert sorted(line.split()[0] for line in finished) == sorted(MODELS)
    assert all(re.search(r"of training, [\d,]+ tok/s$", line) for line in finished), finished
    assert re.search(r"^zoo: 3/3 models trained in .* by 2 processes$", out, re.M), out
