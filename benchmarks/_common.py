"""Shared helpers for the benchmark scripts: peak-memory sampling and timing."""

from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass

import torch


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@dataclass
class Measurement:
    seconds: float = 0.0
    peak_bytes: int = 0


@contextmanager
def measure(device: str = "cpu", interval: float = 0.005):
    """Wall time and peak memory above the starting level (RSS on CPU, allocator peak on CUDA)."""
    m = Measurement()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        start = time.perf_counter()
        yield m
        torch.cuda.synchronize()
        m.seconds = time.perf_counter() - start
        m.peak_bytes = torch.cuda.max_memory_allocated() - base
        return
    base, peak, stop = rss_bytes(), [rss_bytes()], threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], rss_bytes())
            time.sleep(interval)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    start = time.perf_counter()
    try:
        yield m
    finally:
        m.seconds = time.perf_counter() - start
        stop.set()
        thread.join()
        m.peak_bytes = max(peak[0], rss_bytes()) - base


def gib(n: int) -> str:
    """A size in GiB, or in MiB below a tenth of a GiB."""
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 / 10 else f"{n / 2**20:.1f} MiB"
