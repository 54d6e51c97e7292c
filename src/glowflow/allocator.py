"""The CPU allocator a process runs with: glibc's default, or tuned to keep freed memory for
reuse (:func:`retain_freed_memory`).

glibc maps every block above its mmap threshold (at most 32 MiB, adapting) straight from the
kernel and hands it back when freed, so a process that frees and reallocates large activations
page-faults them in again on every call. Who tunes it:

* the ``glowflow`` commands that run a trained model on large batches
  (:data:`glowflow.cli.BATCH_INFERENCE_COMMANDS`: ``eval``, ``sample``, ...), through
  :func:`allocator_from_environment` and :func:`tune_allocator` (faster, for more peak memory:
  the README's "The CPU allocator" has the figures);
* each benchmark process, as its spec says (``glowflow bench --allocator``, default ``retain``).

``glowflow train`` leaves ``malloc`` as it is: measured, its steps were no faster with it and
its peak memory higher. ``GLOWFLOW_ALLOCATOR=default`` leaves
``malloc`` alone for every command, and so does any of glibc's own threshold settings in the
environment (``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``, or ``GLIBC_TUNABLES``
naming either): a user's choice stands. Importing glowflow changes nothing; a Python program
calls :func:`retain_freed_memory` itself if it wants the same.
"""

from __future__ import annotations

import ctypes
import os
import platform
from typing import Mapping

from .errors import ConfigError

ALLOCATORS = ("retain", "default")
"""``retain``: :func:`retain_freed_memory`; ``default``: glibc's own ``malloc`` settings."""

ALLOCATOR_VARIABLE = "GLOWFLOW_ALLOCATOR"
"""The environment variable that picks the allocator of a ``glowflow`` command that tunes it:
one of :data:`ALLOCATORS` (``retain`` when unset)."""

GLIBC_THRESHOLD_VARIABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
"""glibc's own environment settings of the two thresholds :func:`retain_freed_memory` sets."""


def check_allocator(allocator: str, what: str) -> str:
    """``allocator`` if it is one of :data:`ALLOCATORS`, else a
    :class:`~glowflow.errors.ConfigError` naming ``what`` was given it."""
    if allocator not in ALLOCATORS:
        raise ConfigError(f"{what} must be one of {ALLOCATORS}, got {allocator!r}")
    return allocator


def retain_freed_memory() -> bool:
    """Make glibc's ``malloc`` keep freed memory for reuse instead of handing it back (CPU).

    PyTorch's CPU tensors come from ``malloc``. By default glibc maps large blocks with
    ``mmap`` and trims the heap top as soon as it is freed, so a loop that frees and reallocates
    the same activations page-faults them in again every time: in memory mode ``"invertible"``
    (:mod:`glowflow.memory`), whose backward pass frees each step's recomputed graph before
    building the next, about 80,000 faults per ``cifar10-small`` training step (a third of its
    time). This sets ``M_MMAP_THRESHOLD`` to 1 GiB and ``M_TRIM_THRESHOLD`` to 2 GiB (the
    ``MALLOC_*_`` environment variables do the same): blocks come from the heap and freed ones
    are reused. The heap grows to the peak working set and the process keeps it until it exits;
    freed blocks that do not fit the next request add to it (the README's "The CPU allocator"
    measures how much). Process-wide; returns ``False`` (nothing changed) where the C
    library is not glibc.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    mallopt = ctypes.CDLL(None).mallopt
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(mallopt(m_mmap_threshold, 2**30) and mallopt(m_trim_threshold, 2**31 - 1))


def allocator_from_environment(environ: Mapping[str, str] = os.environ) -> str:
    """The allocator a ``glowflow`` command that tunes it runs with: :data:`ALLOCATOR_VARIABLE`
    if set (one of :data:`ALLOCATORS`, else :class:`~glowflow.errors.ConfigError`); otherwise
    ``default`` where glibc's thresholds are set in the environment
    (:data:`GLIBC_THRESHOLD_VARIABLES`, or ``GLIBC_TUNABLES`` naming ``mmap_threshold`` or
    ``trim_threshold``), else ``retain``."""
    chosen = environ.get(ALLOCATOR_VARIABLE)
    if chosen is not None:
        return check_allocator(chosen, f"environment variable {ALLOCATOR_VARIABLE}")
    tunables = environ.get("GLIBC_TUNABLES", "")
    if any(name in environ for name in GLIBC_THRESHOLD_VARIABLES) or any(
        name in tunables for name in ("mmap_threshold", "trim_threshold")
    ):
        return "default"
    return "retain"


def tune_allocator(allocator: str) -> bool:
    """Run this process with ``allocator`` (one of :data:`ALLOCATORS`): ``retain`` calls
    :func:`retain_freed_memory`, ``default`` changes nothing. Whether ``malloc`` was changed."""
    return check_allocator(allocator, "allocator") == "retain" and retain_freed_memory()
