"""Peak resident memory of this process since a chosen moment.

Method, best first: Linux keeps the true peak in ``VmHWM`` (/proc/self/status), and writing
``5`` to /proc/self/clear_refs resets it to the current RSS, so the peak of one phase can be
read exactly. Where that reset is not permitted (or there is no /proc), a background thread
samples RSS every few milliseconds instead — which can miss a spike shorter than the interval.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

import psutil

_PROC = Path("/proc/self")


def rss_bytes() -> int:
    return psutil.Process().memory_info().rss


def _vm_hwm_bytes() -> int | None:
    try:
        m = re.search(r"^VmHWM:\s+(\d+)\s+kB", (_PROC / "status").read_text(), re.M)
    except OSError:
        return None
    return int(m.group(1)) * 1024 if m else None


def _reset_hwm() -> bool:
    """Reset VmHWM to the current RSS; True if the kernel let us and the reset took."""
    try:
        (_PROC / "clear_refs").write_text("5")
    except OSError:
        return False
    hwm = _vm_hwm_bytes()
    return hwm is not None and hwm <= rss_bytes() * 1.05 + (1 << 20)


class PeakRss:
    """``start()`` marks the moment; ``peak()`` is the largest RSS since, in bytes; ``method`` says how."""

    def __init__(self, interval_s: float = 0.002):
        self.interval_s = interval_s
        self.method = ""
        self._peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> PeakRss:
        self.stop()
        if _reset_hwm():
            self.method = "VmHWM (kernel peak, reset via /proc/self/clear_refs)"
            return self
        self.method = f"RSS sampled every {self.interval_s * 1000:g} ms (VmHWM reset not permitted)"
        self._peak = rss_bytes()
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        proc = psutil.Process()
        while not self._stop.wait(self.interval_s):
            self._peak = max(self._peak, proc.memory_info().rss)

    def peak(self) -> int:
        if self._thread is None:
            hwm = _vm_hwm_bytes()
            return max(hwm or 0, rss_bytes())
        return max(self._peak, rss_bytes())

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
