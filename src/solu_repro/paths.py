"""Where things live on disk: the one source of truth for default directories.

Every directory can be overridden with an environment variable so that tests,
notebooks and CI can point the package somewhere else without editing code.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def _env_path(var: str, default: Path) -> Path:
    value = os.environ.get(var)
    return Path(value).expanduser() if value else default


def project_root() -> Path:
    """The solu-repro checkout containing the working directory, else the working directory.

    Notebooks execute with their own folder as the working directory; looking upwards for
    the repo keeps them on the same ``data/`` and ``runs/`` as the command line.
    """
    cwd = Path.cwd().resolve()
    for folder in (cwd, *cwd.parents):
        pyproject = folder / "pyproject.toml"
        if (folder / "_config.yml").is_file() and pyproject.is_file() and \
                'name = "solu-repro"' in pyproject.read_text(errors="replace"):
            return folder
    return cwd


def data_dir() -> Path:
    """Cache of built corpora and tokenizers (``$SOLU_DATA_DIR``, default ``./data``)."""
    return _env_path("SOLU_DATA_DIR", project_root() / "data")


def runs_dir() -> Path:
    """Trained runs, keyed by config hash (``$SOLU_RUNS_DIR``, default ``./runs``)."""
    return _env_path("SOLU_RUNS_DIR", project_root() / "runs")


def writable_problem(folder: str | Path) -> str | None:
    """None if files can be written in ``folder`` (created if missing), else why not, in
    words ("Read-only file system", "No space left on device", ...): checked by writing and
    removing a small probe file, before anything is computed that would then be lost."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-probe-", dir=folder)
        try:
            os.write(fd, b"\0" * 4096)
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(probe)
    except FileExistsError:
        return "it exists and is not a folder"
    except NotADirectoryError:
        return "a part of that path is a file, not a folder"
    except OSError as exc:
        return exc.strerror or str(exc)
    return None
