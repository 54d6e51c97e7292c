"""The process-wide torch settings a run changes, and their restoration."""

from __future__ import annotations

import os

import torch

from .config import TrainConfig


class TorchSettings:
    """Applies a run's threads, determinism and seed to torch's global state on entry to the
    run, and puts the threads and determinism back on :meth:`restore` (a library call must not
    leave the caller's process changed)."""

    def __init__(self, config: TrainConfig) -> None:
        self._deterministic_before = torch.are_deterministic_algorithms_enabled()
        self._threads_before = torch.get_num_threads()
        if config.threads > 0:
            torch.set_num_threads(config.threads)
        if config.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
        torch.manual_seed(config.seed)

    def restore(self) -> None:
        torch.use_deterministic_algorithms(self._deterministic_before)
        torch.set_num_threads(self._threads_before)
