"""The CPU allocator a measuring process runs with: glibc's default, or tuned to keep freed
memory for reuse (:func:`retain_freed_memory`).

Only the benchmark tunes the allocator (``--allocator``, default ``retain``); training leaves
the process's ``malloc`` as it finds it.
"""

from __future__ import annotations

import ctypes
import platform

ALLOCATORS = ("retain", "default")
"""``retain``: :func:`retain_freed_memory` in each measuring process; ``default``: glibc's own
``malloc`` settings."""


def retain_freed_memory() -> bool:
    """Make glibc's ``malloc`` keep freed memory for reuse instead of handing it back (CPU).

    PyTorch's CPU tensors come from ``malloc``. By default glibc maps large blocks with
    ``mmap`` and trims the heap top as soon as it is freed, so a loop that frees and reallocates
    the same activations page-faults them in again every time: in memory mode ``"invertible"``
    (:mod:`glowflow.memory`), whose backward pass frees each step's recomputed graph before
    building the next, about 80,000 faults per ``cifar10-small`` training step (a third of its
    time). This sets ``M_MMAP_THRESHOLD`` to 1 GiB and ``M_TRIM_THRESHOLD`` to 2 GiB (the
    ``MALLOC_*_`` environment variables do the same): blocks come from the heap and freed ones
    are reused. Peak resident memory is unchanged -- the heap grows to the peak working set --
    but the process keeps it until it exits. Process-wide; returns ``False`` (nothing changed)
    where the C library is not glibc.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    mallopt = ctypes.CDLL(None).mallopt
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(mallopt(m_mmap_threshold, 2**30) and mallopt(m_trim_threshold, 2**31 - 1))
