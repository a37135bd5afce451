"""Facts about the machine that the benchmarks record with their figures.

Shared by bench/workload.py and bench/net/run.py (which puts bench/ on
sys.path for it).
"""

from __future__ import annotations

import platform


def cpu_model() -> str | None:
    """The CPU's model name from /proc/cpuinfo, or None where it has none."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def kernel() -> str:
    """The kernel's release, as platform.release() gives it."""
    return platform.release()


def describe() -> str:
    """One line: the CPU model and the kernel ("<cpu>, Linux <release>")."""
    return ", ".join(x for x in (cpu_model(),
                                 f"{platform.system()} {kernel()}") if x)
