"""A JupyterLab server and a Chromium driven by Selenium, for tests/book/test_jupyterlab.py.

``LabSession(workdir, notebooks, env)`` copies the notebooks into ``workdir`` and, on
``start()``, runs ``python -m jupyterlab`` (this interpreter's, so this venv's JupyterLab) with

* a random token, ``--port=0`` (the OS picks a free port; the server writes it to its
  ``jpserver-<pid>.json`` in the runtime dir, where it is read back), no browser of its own;
* JUPYTER_CONFIG_DIR / JUPYTER_DATA_DIR / JUPYTER_RUNTIME_DIR, the JupyterLab settings and
  workspaces and IPYTHONDIR all under ``workdir``: the user's settings are neither read nor
  written (inherited ``JUPYTER*``/``JPY_*`` variables are dropped);
* its own process group, so that ``close()`` can signal everything it started;

then opens JupyterLab in Debian's Chromium through ChromeDriver (``/usr/bin/chromium``,
``/usr/bin/chromedriver``, or ``$SOLU_CHROMIUM``/``$SOLU_CHROMEDRIVER``). Selenium Manager is
never used: the driver's path is given, ``SE_OFFLINE`` is set, and a call to it raises.

``close()`` quits the driver, asks the server to shut down (it stops its kernels), signals the
server's process group, and returns a description of every process of the session (server,
kernels, ChromeDriver, Chromium) still alive after that; those are then killed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterable

import psutil

CHROMIUM = os.environ.get("SOLU_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("SOLU_CHROMEDRIVER", "/usr/bin/chromedriver")
# The network is closed: without the background-networking flags Chromium keeps trying to
# reach Google's services; the resolver rule makes every lookup but the server's address
# (127.0.0.1: a bare MAP * maps IP literals too) fail at once.
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync",
                  "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                  "--window-size=1400,1000")

# JupyterLab settings of the session (written under the temporary settings dir): no news or
# update check (the network is closed and the toast covers the page), every cell attached to
# the DOM (the default content-visibility windowing may skip off-screen outputs), no autosave.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false",
                                                    "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
}

# Processes of ours that may outlive a careless teardown, by name or command line.
OUR_PROCESS = re.compile(r"jupyter|ipykernel|chrom", re.IGNORECASE)

# Run by execute_async_script: BODY is the body of an async function that sees ``app``
# (window.jupyterapp), ``args`` and ``notebook(path)``; its value or error comes back.
_ASYNC = """
const done = arguments[arguments.length - 1];
const args = Array.prototype.slice.call(arguments, 0, -1);
const app = window.jupyterapp;
const notebook = (path) => {
  for (const w of app.shell.widgets('main')) {
    if (w.context && w.context.path === path && w.model && w.model.cells) return w;
  }
  return null;
};
(async () => { BODY })().then(
  (value) => done({ok: true, value: value === undefined ? null : value}),
  (error) => done({ok: false, error: String((error && error.stack) || error)}));
"""


class LabError(AssertionError):
    """The server, the browser or the page did not do what the test waited for."""


def wait_for(what: str, timeout: float, probe: Callable[[], tuple[bool, Any]],
             interval: float = 0.25) -> Any:
    """Call ``probe`` until it returns ``(True, value)``; ``value``, or ``LabError`` naming
    ``what`` and the last value seen after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        ok, value = probe()
        if ok:
            return value
        if time.monotonic() > deadline:
            seen = repr(value)
            seen = seen if len(seen) <= 2000 else seen[:2000] + " ..."
            raise LabError(f"{what}: not after {timeout:g} s; last seen: {seen}")
        time.sleep(interval)


def missing_browser() -> str | None:
    """Why the browser can't be driven (a message for the test to fail with), or None."""
    missing = [f"{what} at {path}" for what, path, var in
               (("Chromium", CHROMIUM, "SOLU_CHROMIUM"),
                ("ChromeDriver", CHROMEDRIVER, "SOLU_CHROMEDRIVER"))
               if not (Path(path).is_file() and os.access(path, os.X_OK))]
    if missing:
        return (f"no {' and no '.join(missing)}: run `make browser` (installs Debian's chromium "
                "and chromium-driver), or point $SOLU_CHROMIUM and $SOLU_CHROMEDRIVER at a "
                "Chromium and the ChromeDriver of the same version")
    versions = {}
    for what, path in (("Chromium", CHROMIUM), ("ChromeDriver", CHROMEDRIVER)):
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60)
        m = re.search(r"(\d+)\.\d+\.\d+\.\d+", out.stdout)
        versions[what] = m.group(0) if m else f"unknown ({out.stdout.strip()!r})"
    majors = {v.split(".")[0] for v in versions.values()}
    if len(majors) != 1:
        return (f"Chromium {versions['Chromium']} ({CHROMIUM}) and ChromeDriver "
                f"{versions['ChromeDriver']} ({CHROMEDRIVER}) differ: run `make browser` after "
                "`apt-get install --only-upgrade chromium chromium-driver`, or point "
                "$SOLU_CHROMIUM/$SOLU_CHROMEDRIVER at a matching pair")
    return None


def _describe(p: psutil.Process) -> str:
    with contextlib.suppress(psutil.Error):
        return f"pid {p.pid} {' '.join(p.cmdline())[:200]}"
    return f"pid {p.pid}"


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


class LabSession:
    """One JupyterLab server on a temporary copy of notebooks, and one browser on it."""

    def __init__(self, workdir: Path, notebooks: Iterable[Path], env: dict[str, str],
                 startup_timeout: float = 90.0):
        self.workdir = Path(workdir)
        self.root = self.workdir / "notebooks"
        self.jupyter = self.workdir / "jupyter"
        self.log_path = self.workdir / "jupyter-lab.log"
        self.driver_log = self.workdir / "chromedriver.log"
        self.profile = self.workdir / "chromium-profile"
        self.startup_timeout = startup_timeout
        self.token = secrets.token_hex(24)
        self.root.mkdir(parents=True)
        for nb in notebooks:
            shutil.copy2(nb, self.root / nb.name)
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("JUPYTER", "JPY_"))}
        self.env.update(env)
        self.env.update(
            JUPYTER_CONFIG_DIR=str(self.jupyter / "config"),
            JUPYTER_DATA_DIR=str(self.jupyter / "data"),
            JUPYTER_RUNTIME_DIR=str(self.jupyter / "runtime"),
            JUPYTERLAB_SETTINGS_DIR=str(self.jupyter / "lab" / "user-settings"),
            JUPYTERLAB_WORKSPACES_DIR=str(self.jupyter / "lab" / "workspaces"),
            IPYTHONDIR=str(self.jupyter / "ipython"),
            PYTHONUNBUFFERED="1",
        )
        self.proc: subprocess.Popen | None = None
        self.driver = None
        self.url: str | None = None
        self._log = None
        self._tracked: dict[int, psutil.Process] = {}

    # ------------------------------------------------------------------ start

    def start(self) -> "LabSession":
        self._start_server()
        self._start_browser()
        self._open_lab()
        return self

    def _start_server(self) -> None:
        for name, values in LAB_SETTINGS.items():
            path = Path(self.env["JUPYTERLAB_SETTINGS_DIR"]) / f"{name}.jupyterlab-settings"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))
        cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1",
               "--port=0", "--ServerApp.port_retries=0",
               f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={self.root}",
               # window.jupyterapp: the page's command registry, for Run All Cells
               "--LabApp.expose_app_in_browser=True",
               "--LabApp.news_url=None",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
               "--LabApp.extension_manager=readonly",
               # a safety net should this process die without its teardown
               "--ServerApp.shutdown_no_activity_timeout=900"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, cwd=self.root, env=self.env, stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        info_file = Path(self.env["JUPYTER_RUNTIME_DIR"]) / f"jpserver-{self.proc.pid}.json"

        def up() -> tuple[bool, Any]:
            if self.proc.poll() is not None:
                raise LabError(f"jupyter lab exited with {self.proc.returncode} while starting:"
                               f"\n{self.log_tail()}")
            if not info_file.is_file():
                return False, "no server info file yet"
            try:
                info = json.loads(info_file.read_text())
                url = f"http://127.0.0.1:{info['port']}{info['base_url']}"
                self.api("GET", "api/status", url=url)
            except (OSError, ValueError, KeyError) as exc:
                return False, repr(exc)
            self.url = url
            return True, url

        wait_for("jupyter lab answering on its port", self.startup_timeout, up)

    def _start_browser(self) -> None:
        from selenium import webdriver
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.chrome.service import Service

        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={self.profile}"):
            options.add_argument(flag)
        service = Service(executable_path=CHROMEDRIVER, log_output=str(self.driver_log))
        try:
            self.driver = webdriver.Chrome(service=service, options=options)
        except WebDriverException as exc:
            raise LabError(f"ChromeDriver {CHROMEDRIVER} could not start Chromium {CHROMIUM}: "
                           f"{exc.msg or exc}(log: {self.driver_log})") from exc
        self.driver.set_page_load_timeout(self.startup_timeout)
        self.track()

    def _open_lab(self) -> None:
        self.driver.get(f"{self.url}lab?token={self.token}")
        wait_for("JupyterLab's app object (window.jupyterapp)", self.startup_timeout,
                 lambda: (bool(v := self.driver.execute_script(
                     "return !!(window.jupyterapp && window.jupyterapp.commands)")), v))
        self.js("await app.restored; return true;", timeout=self.startup_timeout)

    # ------------------------------------------------------------------ use

    def api(self, method: str, path: str, url: str | None = None) -> bytes:
        req = urllib.request.Request(f"{url or self.url}{path}", method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.read()

    def js(self, body: str, *args: Any, timeout: float = 30.0) -> Any:
        """Run ``body`` as an async function in the page (see ``_ASYNC``); its value."""
        self.driver.set_script_timeout(timeout)
        result = self.driver.execute_async_script(_ASYNC.replace("BODY", body), *args)
        if not result["ok"]:
            raise LabError(f"in the page: {result['error']}")
        return result["value"]

    def log_tail(self, chars: int = 3000) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-chars:]
        return ""

    def save_evidence(self, folder: Path, stem: str) -> str:
        """A screenshot, the page's text and the server log into ``folder``; where they are."""
        folder.mkdir(parents=True, exist_ok=True)
        saved = []
        if self.driver is not None:
            with contextlib.suppress(Exception):
                png = folder / f"{stem}.png"
                self.driver.save_screenshot(str(png))
                saved.append(f"screenshot {png}")
            with contextlib.suppress(Exception):
                text = folder / f"{stem}-page.txt"
                text.write_text(self.driver.execute_script("return document.body.innerText"))
                saved.append(f"page text {text}")
        with contextlib.suppress(OSError):
            log = folder / f"{stem}-jupyter-lab.log"
            shutil.copy(self.log_path, log)
            saved.append(f"server log {log}")
        return "saved: " + (", ".join(saved) or "nothing (no browser, no log)")

    # ------------------------------------------------------------------ stop

    def track(self) -> None:
        """Remember the server's and the driver's processes and all their descendants."""
        roots = [self.proc.pid if self.proc else None]
        service = getattr(self.driver, "service", None)
        roots.append(getattr(getattr(service, "process", None), "pid", None))
        for pid in filter(None, roots):
            with contextlib.suppress(psutil.Error):
                root = psutil.Process(pid)
                for p in (root, *root.children(recursive=True)):
                    self._tracked.setdefault(p.pid, p)

    def close(self, grace: float = 20.0) -> list[str]:
        """Stop everything; the processes that were still alive after the orderly stop."""
        self.track()
        if self.driver is not None:
            with contextlib.suppress(Exception):
                self.driver.quit()
            self.driver = None
        if self.proc is not None:
            if self.proc.poll() is None and self.url:
                with contextlib.suppress(OSError):
                    self.api("POST", "api/shutdown")  # stops the kernels, then the server
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(grace)
            self._kill_group(self.proc.pid)
        if self._log is not None:
            self._log.close()
            self._log = None
        # Kernels run in sessions of their own and the browser's helpers may be re-parented:
        # look for every process we tracked, and any whose command line names our workdir.
        deadline = time.monotonic() + 10
        while True:
            left = [p for p in self._tracked.values() if _alive(p)]
            left += [p for p in self._ours() if p.pid not in self._tracked]
            if not left or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        report = [_describe(p) for p in left]
        for p in left:
            with contextlib.suppress(psutil.Error):
                p.kill()
        psutil.wait_procs(left, timeout=5)
        return report

    def _kill_group(self, pgid: int) -> None:
        """SIGTERM, then SIGKILL, to the server's process group until no member is left."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(pgid, sig)
            except (ProcessLookupError, PermissionError):
                return
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)  # reap the leader: a zombie still counts as a member
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                try:
                    os.killpg(pgid, 0)
                except (ProcessLookupError, PermissionError):
                    return
                time.sleep(0.1)

    def _ours(self) -> list[psutil.Process]:
        """Live processes whose command line mentions the workdir (kernels, Chromium)."""
        mark = str(self.workdir)
        found = []
        for p in psutil.process_iter(["cmdline"]):
            cmdline = p.info.get("cmdline") or []
            if p.pid != os.getpid() and any(mark in part for part in cmdline) and _alive(p):
                found.append(p)
        return found


def jupyter_children(exclude: Iterable[psutil.Process] = ()) -> list[psutil.Process]:
    """Live jupyter, kernel or Chromium descendants of this (the test) process, but those of
    ``exclude`` (what was there before: another test's)."""
    skip = {(p.pid, _created(p)) for p in exclude}
    out = []
    for p in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if (_alive(p) and (p.pid, _created(p)) not in skip
                    and OUR_PROCESS.search(" ".join([p.name(), *p.cmdline()]))):
                out.append(p)
    return out


def describe(processes: Iterable[psutil.Process]) -> list[str]:
    return [_describe(p) for p in processes]


def _created(p: psutil.Process) -> float | None:
    with contextlib.suppress(psutil.Error):
        return p.create_time()
    return None
