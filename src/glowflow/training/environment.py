"""The process-wide torch settings a run changes, and their restoration."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
from torch import nn

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


def startup_line(
    config: TrainConfig,
    flow: nn.Module,
    device: torch.device,
    world_size: int,
    splits: Sequence[tuple[str, Optional[Any]]],
    run_dir: Path,
) -> str:
    """The start-up line: family, parameters, device and threads, split sizes, run folder."""
    sizes = ", ".join(f"{name} {len(split)}" for name, split in splits if split is not None)
    parameters = sum(p.numel() for p in flow.parameters())
    return (
        f"{config.family} with {parameters:,} parameters on {device} "
        f"({torch.get_num_threads()} threads, world {world_size}); "
        f"{config.dataset}: {sizes} images; run folder {run_dir}"
    )
