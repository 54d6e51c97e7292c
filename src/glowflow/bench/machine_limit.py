"""The machine's limit for a model: its matmul rate and the model's FLOPs per image.

A throughput means little without the ceiling it runs under. For a task costing ``F``
floating-point operations per image (counted by :class:`torch.utils.flop_counter.FlopCounterMode`
on the real call, convolutions and matmuls of the forward and backward passes) on a machine
whose dense matmul runs at ``R`` FLOP/s in the task's precision, no implementation can exceed
``R / F`` images/s; a measured rate ``r`` is the fraction ``r F / R`` of that limit.
"""

from __future__ import annotations

import time
from typing import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode


def matmul_rate(
    dtype: torch.dtype, device: torch.device, size: int = 2048, min_seconds: float = 0.3
) -> float:
    """FLOP/s of a dense ``size x size`` matmul in ``dtype`` on ``device``: ``2 size^3`` per
    product, after two warm-up products, timed over at least ``min_seconds``."""
    generator = torch.Generator().manual_seed(0)
    a, b = (torch.randn(size, size, generator=generator).to(device, dtype) for _ in range(2))
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(2):
        torch.mm(a, b)
    sync()
    calls, start = 0, time.perf_counter()
    while True:
        torch.mm(a, b)
        calls += 1
        sync()
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return 2 * size**3 * calls / elapsed


def count_flops(fn: Callable[[], object]) -> int:
    """Floating-point operations of one call of ``fn`` (matmuls and convolutions, forward and
    backward), as :class:`~torch.utils.flop_counter.FlopCounterMode` counts them."""
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return counter.get_total_flops()


def fraction_of_limit(images_per_s: float, flops_per_image: float, rate: float) -> float:
    """``images_per_s * flops_per_image / rate``: the share of the matmul limit reached."""
    return images_per_s * flops_per_image / rate
