"""Peak memory of a process, as the bench reports it."""

from __future__ import annotations


def peak_rss_mb(pid: int | str = "self") -> float | None:
    """VmHWM of a live process in MiB (None where /proc is unavailable)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None
