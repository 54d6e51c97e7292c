"""What the peer runners share: the command line, the process set-up and the training step.

A runner is called as ``python -m glowflow.bench.runners.NAME PEER_PATH SPEC_JSON`` (see
:mod:`glowflow.bench.peers`); :func:`main` imports nothing of the peer itself: the runner's
``build(spec, x)`` does, after ``PEER_PATH`` is put first on ``sys.path``.
"""

from __future__ import annotations

import json
import sys
from typing import Callable, Sequence

import torch
from torch import nn

from ...training.config import TrainConfig
from ...training.step import make_optimizer
from ..measure import Result, Tasks, measure_tasks, setup_process


def old_torch_names() -> None:
    """The peers call ``torch.qr`` and ``torch.lu``, which torch has since removed; point them
    at their ``torch.linalg`` successors (used for the initial 1x1 weights only)."""
    torch.qr = torch.linalg.qr
    torch.lu = torch.linalg.lu_factor


def train_step(
    model: nn.Module, bpd: Callable[[], torch.Tensor], device: torch.device
) -> Callable[[], torch.Tensor]:
    """The same step glowflow's trainer takes, for a peer's model: Adam (lr 1e-4, fused on
    CUDA and CPU), mean bits/dim as the loss, gradient-norm clipping at glowflow's default, the step
    skipped when the loss or the norm is not finite. Returns the loss."""
    optimizer = make_optimizer("adam", list(model.parameters()), 1e-4, device)
    parameters = [p for p in model.parameters() if p.requires_grad]
    max_norm = TrainConfig().max_grad_norm

    def step() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        loss = bpd()
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(parameters, max_norm)
        ok = torch.isfinite(loss.detach()) & torch.isfinite(norm)
        if optimizer.defaults.get("fused"):
            optimizer.found_inf = (~ok).float()  # type: ignore[attr-defined]
            optimizer.step()
        elif bool(ok):
            optimizer.step()
        return loss.detach()

    return step


def main(argv: Sequence[str], build: Callable[[Result, torch.Tensor], Tasks]) -> None:
    """Set the process up as glowflow's benchmark does, build the peer's tasks from
    ``argv = [PEER_PATH, SPEC_JSON]`` and print the measurement as one JSON line."""
    peer_path, spec = argv[0], json.loads(argv[1])
    sys.path.insert(0, peer_path)
    old_torch_names()
    _, _, x, sync = setup_process(spec)
    print(json.dumps(measure_tasks(spec, build(spec, x), x, sync)))
