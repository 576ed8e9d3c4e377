"""What the benchmarks share: the device to time on, and a process's peak memory."""

from __future__ import annotations

import resource
import sys

import torch


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        sys.exit("error: --device cuda but torch sees no CUDA GPU")
    return torch.device(name)


# --- memory --------------------------------------------------------------------------------------
class PeakRSS:
    """Peak resident memory of this process since the last ``reset``, in MB.

    On Linux, the kernel's high-water mark (``VmHWM``), which writing 5 to
    ``/proc/self/clear_refs`` resets to the current RSS; elsewhere ``ru_maxrss``, which cannot
    be reset (a phase's growth then only shows once it exceeds every earlier peak, including
    the one a child inherits from its parent across exec).
    """

    def __init__(self):
        self.resettable = self._reset()

    @staticmethod
    def _reset() -> bool:
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            return _status_mb("VmHWM") is not None
        except OSError:
            return False

    def reset(self) -> float:
        """Start a phase; returns the current RSS (MB), the phase's baseline."""
        if self.resettable and self._reset():
            return _status_mb("VmRSS")
        return self.peak()

    def peak(self) -> float:
        if self.resettable:
            return _status_mb("VmHWM")
        # Linux reports ru_maxrss in KiB, macOS in bytes.
        scale = 1 if sys.platform == "darwin" else 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2 ** 20


def _status_mb(field: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return None
