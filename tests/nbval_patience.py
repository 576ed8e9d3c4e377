"""A pytest plugin for the nbval runs (``-p tests.nbval_patience``): wait up to
``OUTPUT_TIMEOUT`` seconds for a cell's output messages.

After a cell's execute reply, nbval reads the kernel's iopub messages with a hard-coded 5 s
timeout (``IPyNbCell.output_timeout``). On a busy 2-core machine a kernel that has just run a
multi-process computation (chapter 4's scoring) can take longer to flush them, and nbval then
fails the cell with "Timeout of 5 seconds exceeded waiting for output", a failure about the
machine's load, not the notebook (seen once in a clean-clone CI run, gone on rerun). The cell's
own time limit is unchanged (``--timeout`` and nbval's cell timeout).
"""

from __future__ import annotations

OUTPUT_TIMEOUT = 120


def pytest_collection_modifyitems(items):
    for item in items:
        if hasattr(item, "output_timeout"):
            item.output_timeout = OUTPUT_TIMEOUT
