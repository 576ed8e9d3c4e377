"""Watch a zoo that child processes train (``zoo._train_in_processes``).

The children report through their run directories: ``metrics.jsonl`` (one JSON object a line
per log step, evaluation and snapshot) and ``result.json`` (written when a run is done). The
watcher reads the new bytes of these files about once a second and shows, on a terminal, one
live line per model (step of total, tokens/s, training loss, time left) and one for the whole
zoo; under CI, into a pipe or a file, or with ``TERM=dumb``, one plain line per model as it
finishes and a summary. Each child trains its models one after the other, in the order given,
so a model is running when every model before it in its child's group is done.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Callable, Mapping, Sequence

from tqdm import tqdm

WAITING, RUNNING, DONE, FAILED, SKIPPED = "waiting", "running", "done", "failed", "skipped"
POLL_SECONDS = 1.0


def duration(seconds: float) -> str:
    """Seconds as a reader counts them: "42 s", "3 min 12 s", "1 h 05 min"."""
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s} s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m} min {s} s"
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min"


class MetricsTail:
    """The records appended to a ``metrics.jsonl`` since the last ``read``.

    A partly written last line waits for its end; a missing file has no records; a file that
    was replaced or cut short (a resumed run drops the lines after its checkpoint) is read
    again from its start.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._offset = 0
        self._inode: int | None = None
        self._partial = b""

    def read(self) -> tuple[list[dict[str, Any]], bool]:
        """The new records, and whether the file started over (then the records are all of
        it, and what was read before no longer holds)."""
        try:
            with open(self.path, "rb") as f:
                st = os.fstat(f.fileno())
                reset = self._inode is not None and (st.st_ino != self._inode
                                                     or st.st_size < self._offset)
                if reset:
                    self._offset, self._partial = 0, b""
                self._inode = st.st_ino
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            reset = self._inode is not None
            self._offset, self._inode, self._partial = 0, None, b""
            return [], reset
        self._offset += len(data)
        *lines, self._partial = (self._partial + data).split(b"\n")
        return [r for r in map(_parse, lines) if r is not None], reset


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    return record if isinstance(record, dict) else None


def read_result(run_dir: Path) -> dict[str, Any] | None:
    """A run's ``result.json`` (None while it is missing or unreadable)."""
    try:
        result = json.loads((run_dir / "result.json").read_text())
    except (OSError, ValueError):
        return None
    return result if isinstance(result, dict) else None


@dataclass
class ModelStatus:
    """What the watcher knows of one model: its state and its latest metrics."""

    name: str
    total: int
    """Its ``max_steps``."""
    cost: float = 1.0
    """Its training cost in any unit shared by the zoo (FLOPs): waiting models' time is
    estimated from the running ones' seconds per unit."""
    state: str = WAITING
    step: int = 0
    loss: float | None = None
    val_loss: float | None = None
    tokens_per_s: float | None = None
    tokens_per_step: float | None = None
    result: dict[str, Any] | None = None
    first_seen: tuple[float, int] | None = None
    """(time, step) when the step was first seen to move in this watch."""
    last_seen: tuple[float, int] | None = None
    """(time, step) when the step last moved."""

    def reset(self) -> None:
        """Forget the metrics (the file started over)."""
        self.step, self.loss, self.val_loss, self.tokens_per_s = 0, None, None, None
        self.first_seen = self.last_seen = None

    def update(self, records: Sequence[Mapping[str, Any]], now: float) -> None:
        """Take in new ``metrics.jsonl`` records, seen at time ``now``."""
        before = self.step
        for r in records:
            step = r.get("step")
            if not isinstance(step, int):
                continue
            self.step = step
            if "loss" in r:
                self.loss = r.get("loss")
                self.tokens_per_s = r.get("tokens_per_s")
                if r.get("tokens") and step:
                    self.tokens_per_step = r["tokens"] / step
            if "val_loss" in r:
                self.val_loss = r.get("val_loss")
        if self.step > before:
            if self.first_seen is None:
                self.first_seen = (now, self.step)
            self.last_seen = (now, self.step)

    def finish(self, result: Mapping[str, Any]) -> None:
        self.state, self.result = DONE, dict(result)
        self.step = int(result.get("step", self.total))
        self.val_loss = result.get("val_loss", self.val_loss)

    def steps_per_s(self) -> float | None:
        """The step rate seen by the watcher (evaluations and snapshots included), or, before
        the step has moved twice, the rate of the latest training log line."""
        if self.first_seen and self.last_seen and self.last_seen[0] > self.first_seen[0]:
            return (self.last_seen[1] - self.first_seen[1]) / (self.last_seen[0]
                                                               - self.first_seen[0])
        if self.tokens_per_s and self.tokens_per_step:
            return self.tokens_per_s / self.tokens_per_step
        return None

    def eta(self, now: float) -> float | None:
        """Seconds until it is done (None while unknown); counts down between log lines."""
        if self.state == DONE:
            return 0.0
        rate = self.steps_per_s()
        if self.state != RUNNING or not rate:
            return None
        since = now - self.last_seen[0] if self.last_seen else 0.0
        return max(0.0, (self.total - self.step) / rate - since)

    def seconds_per_cost(self) -> float | None:
        """Its seconds per unit of ``cost``: measured while it runs, or its training time."""
        if self.state == DONE and self.result and self.result.get("train_seconds"):
            return float(self.result["train_seconds"]) / self.cost
        rate = self.steps_per_s()
        if self.state == RUNNING and rate:
            return self.total / (rate * self.cost)
        return None


def zoo_eta(statuses: Mapping[str, ModelStatus], groups: Sequence[Sequence[str]],
            now: float) -> float | None:
    """Seconds until every group is done: the longest group's running model's time left plus
    its waiting models' costs at the zoo's mean seconds per cost (None while unknown)."""
    rates = [r for s in statuses.values() if (r := s.seconds_per_cost()) is not None]
    per_cost = sum(rates) / len(rates) if rates else None
    longest = 0.0
    for group in groups:
        left = 0.0
        for name in group:
            s = statuses[name]
            if s.state in (DONE, FAILED, SKIPPED):
                continue
            eta = s.eta(now)
            if eta is None:
                if per_cost is None:
                    return None
                eta = s.cost * per_cost * (1 - min(s.step, s.total) / s.total)
            left += eta
        longest = max(longest, left)
    return longest


def _tok_s(x: float | None) -> str:
    return f"{x:,.0f} tok/s" if x else "? tok/s"


def model_text(s: ModelStatus, now: float) -> str:
    """One model's progress after its name: "40/120  2,345 tok/s  loss 6.123  ETA 12 s"."""
    count = f"{s.step}/{s.total}"
    if s.state == WAITING:
        return "waiting"
    if s.state == SKIPPED:
        return "not trained (its process stopped)"
    if s.state == FAILED:
        return f"{count}  failed"
    if s.state == DONE:
        r = s.result or {}
        seconds, tokens = r.get("train_seconds"), r.get("tokens")
        tok_s = tokens / seconds if tokens and seconds else s.tokens_per_s
        val = f"  val loss {s.val_loss:.4f}" if isinstance(s.val_loss, (int, float)) else ""
        took = f"  trained in {duration(seconds)}" if seconds else ""
        return f"{count}  {_tok_s(tok_s)}{val}{took}"
    if s.loss is None:
        return f"{count}  starting"
    eta = s.eta(now)
    return (f"{count}  {_tok_s(s.tokens_per_s)}  loss {s.loss:.3f}  "
            f"ETA {duration(eta) if eta is not None else '?'}")


def model_line(s: ModelStatus, now: float, width: int = 0) -> str:
    """The model's name (padded to ``width``) and ``model_text``."""
    return f"{s.name:<{width}}  {model_text(s, now)}"


def zoo_text(statuses: Mapping[str, ModelStatus], groups: Sequence[Sequence[str]],
             now: float, elapsed: float, finished: bool = False) -> str:
    """The whole zoo: "2/6 models trained  3 min 5 s so far  ETA 8 min 12 s"."""
    done = sum(s.state == DONE for s in statuses.values())
    failed = sum(s.state == FAILED for s in statuses.values())
    head = f"{done}/{len(statuses)} models trained" + (f" ({failed} failed)" if failed else "")
    if finished:
        return f"{head} in {duration(elapsed)}"
    eta = zoo_eta(statuses, groups, now)
    return (f"{head}  {duration(elapsed)} so far  "
            f"ETA {duration(eta) if eta is not None else '?'}")


def finished_line(s: ModelStatus, width: int = 0) -> str:
    """The plain line of a model that is done: its name, val loss, training time, tokens/s."""
    r = s.result or {}
    seconds, tokens = r.get("train_seconds"), r.get("tokens")
    val = r.get("val_loss")
    return (f"{s.name:<{width}}  trained: val loss "
            f"{f'{val:.4f}' if isinstance(val, (int, float)) else '?'}, "
            f"{duration(seconds) if seconds else '?'} of training, "
            f"{_tok_s(tokens / seconds if tokens and seconds else None)}")


def use_bars(stream: IO[str], environ: Mapping[str, str] | None = None) -> bool:
    """Live bars only on a terminal, and not under CI (``CI`` set) or ``TERM=dumb``."""
    environ = os.environ if environ is None else environ
    if environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
        return False
    if environ.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class _Line(tqdm):
    """A tqdm bar whose text after the bar is set whole (``text``)."""

    text = ""

    @property
    def format_dict(self):
        return {**super().format_dict, "text": self.text}


class ZooWatcher:
    """The state of a zoo trained by child processes, from their run directories.

    Args:
        groups: each child's models, in the order it trains them.
        run_dirs: each model's run directory, in the order the models are shown.
        totals: each model's ``max_steps``.
        costs: each model's training cost (FLOPs), to estimate waiting models' time.
    """

    def __init__(self, groups: Sequence[Sequence[str]], run_dirs: Mapping[str, Path],
                 totals: Mapping[str, int], costs: Mapping[str, float] | None = None):
        self.groups = [list(g) for g in groups]
        self.run_dirs = {n: Path(p) for n, p in run_dirs.items()}
        names = [n for n in self.run_dirs if any(n in g for g in self.groups)]
        self.statuses = {n: ModelStatus(n, int(totals[n]), float((costs or {}).get(n, 1.0)))
                         for n in names}
        self.tails = {n: MetricsTail(self.run_dirs[n] / "metrics.jsonl") for n in names}

    def poll(self, alive: Sequence[bool], now: float) -> list[str]:
        """Read what the children wrote; ``alive[i]``: whether group i's child still runs
        (sampled before this call, so a child that exited has written all it will). Returns
        the models found done or failed in this poll."""
        ended = []
        for group, running in zip(self.groups, alive):
            current = None
            for name in group:
                s = self.statuses[name]
                if s.state == DONE:
                    continue
                result = read_result(self.run_dirs[name])
                if result is not None:
                    self._read(s, now)
                    s.finish(result)
                    ended.append(name)
                elif current is not None:
                    s.state = WAITING if running else SKIPPED
                else:
                    current = name
                    self._read(s, now)
                    if not running and s.state != FAILED:
                        ended.append(name)
                    s.state = RUNNING if running else FAILED
        return ended

    def _read(self, s: ModelStatus, now: float) -> None:
        records, reset = self.tails[s.name].read()
        if reset:
            s.reset()
        s.update(records, now)


def watch(procs: Sequence[Any], watcher: ZooWatcher, mode: str = "bars",
          stream: IO[str] | None = None, interval: float | None = None,
          clock: Callable[[], float] = time.monotonic) -> list[int]:
    """Poll ``watcher`` until every child in ``procs`` (``Popen``s, one per group) has exited,
    showing progress: ``mode`` "bars" (live lines on a terminal), "plain" (a line per finished
    model and a summary) or "quiet" (nothing), every ``interval`` seconds (default
    ``POLL_SECONDS``). Returns the children's exit codes."""
    stream = stream or sys.stdout
    interval = POLL_SECONDS if interval is None else interval
    statuses = watcher.statuses
    width = max(len(n) for n in statuses)
    start = clock()
    bars: dict[str, _Line] = {}
    zoo_bar = None
    if mode == "bars":
        bar_format = "{desc} |{bar:20}| {text}"
        for i, name in enumerate(statuses):
            bars[name] = _Line(total=statuses[name].total, desc=f"{name:<{width}}",
                               position=i, leave=True, file=stream, bar_format=bar_format,
                               dynamic_ncols=True, mininterval=0)
        zoo_bar = _Line(total=len(statuses), desc=f"{'zoo':<{width}}", position=len(statuses),
                        leave=True, file=stream, bar_format=bar_format, dynamic_ncols=True,
                        mininterval=0)
    try:
        while True:
            codes = [p.poll() for p in procs]
            now = clock()
            finished = all(c is not None for c in codes)
            for name in watcher.poll([c is None for c in codes], now):
                if mode == "plain":
                    s = statuses[name]
                    line = (finished_line(s, width) if s.state == DONE else
                            f"{name:<{width}}  failed at step {s.step}/{s.total}")
                    print(line, file=stream, flush=True)
            if zoo_bar is not None:
                for name, bar in bars.items():
                    s = statuses[name]
                    bar.n, bar.text = min(s.step, s.total), model_text(s, now)
                    bar.refresh()
                zoo_bar.n = sum(s.state == DONE for s in statuses.values())
                zoo_bar.text = zoo_text(statuses, watcher.groups, now, now - start, finished)
                zoo_bar.refresh()
            if finished:
                break
            time.sleep(interval)
    finally:
        for bar in (*bars.values(), *([zoo_bar] if zoo_bar is not None else [])):
            bar.close()
    if mode == "plain":
        now = clock()
        print(f"zoo: {zoo_text(statuses, watcher.groups, now, now - start, True)} "
              f"by {len(procs)} processes", file=stream, flush=True)
    return [int(c) for c in codes]
