"""``train.step.keep_freed_memory``: glibc keeps what a CPU step frees (no page faults per step),
unless the environment chose malloc's settings."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from solu_repro.train import step as step_mod

CHILD = r"""
import resource, sys, torch
from solu_repro.train import step
torch.set_num_threads(1)
on = step.keep_freed_memory() if sys.argv[1] == "keep" else False
x = torch.randn(512, 512)

def work():
    for _ in range(5):
        a = torch.empty(12 << 20)  # 48 MB: above the most glibc's threshold adapts to
        a.fill_(1.0)
        del a

work()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
work()
print(on, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _child(mode: str, **env) -> tuple[bool, int]:
    full = {k: v for k, v in os.environ.items()
            if not k.startswith(("MALLOC_", "GLIBC_TUNABLES", "SOLU_REPRO_DEFAULT_MALLOC"))}
    out = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True,
                         env={**full, **env}, check=True).stdout.split()
    return out[0] == "True", int(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux") or not os.confstr("CS_GNU_LIBC_VERSION"),
                    reason="glibc only")
def test_freed_blocks_stay_mapped():
    on, faults = _child("keep")
    assert on
    _, default_faults = _child("default")
    # 5 x 48 MB freshly mapped by default (12,288 pages each); none once kept
    assert default_faults > 5_000 and faults < 500


@pytest.mark.parametrize("var", ["MALLOC_MMAP_THRESHOLD_", "GLIBC_TUNABLES",
                                 "SOLU_REPRO_DEFAULT_MALLOC"])
def test_the_environment_s_choice_is_kept(var):
    on, _ = _child("keep", **{var: "131072" if var.startswith("MALLOC") else "1"})
    assert not on


def test_idempotent(monkeypatch):
    monkeypatch.setattr(step_mod, "_ALLOCATOR", [])
    first = step_mod.keep_freed_memory()
    assert step_mod.keep_freed_memory() is first and step_mod._ALLOCATOR == [first]
