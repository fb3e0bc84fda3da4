"""Resident memory of this process: now, and at its peak since the last reset (Linux)."""

from __future__ import annotations

import contextlib
import gc
import resource


def current_kib() -> int:
    """VmRSS: what the process holds now."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def peak_kib() -> int:
    """ru_maxrss: the most the process has held since it started, or since reset_peak()."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def reset_peak() -> None:
    """Make the peak start again from what the process holds now (``/proc/self/clear_refs``:
    5 resets the peak RSS that ru_maxrss reports). Where it cannot, the peak stays the
    process's whole-life peak, which only overstates the growth."""
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w", encoding="ascii") as f:
        f.write("5")


def settle() -> int:
    """Collect garbage, restart the peak, and return the RSS the growth is measured from."""
    gc.collect()
    reset_peak()
    return current_kib()
