"""Measuring one model in one process: speed, memory and the fraction of the machine's limit.

Any implementation is measured by the same code through :class:`Tasks` (glowflow's own, built
by :func:`glowflow.bench.process.glowflow_tasks`, or a peer's, by its runner in
:mod:`glowflow.bench.runners`). Speeds are images per second: ``warmup`` untimed calls, then
``repeats`` timed runs of ``iterations`` calls each; the figure is the median run (the best run
is kept too, since a shared machine only ever slows a run down). Peak memory is that of this
process alone (each measurement runs in a fresh one, :mod:`glowflow.bench.run`): on CPU its peak
resident set size (``ru_maxrss``, which includes the PyTorch runtime itself), on CUDA
``torch.cuda.max_memory_allocated``. The limit: the FLOPs per image of one training step and one
sampling call, counted by ``FlopCounterMode``, and the matmul rate of each precision used
(:mod:`glowflow.bench.machine_limit`); each throughput is reported as a fraction of
``rate / FLOPs``. Where the time goes: the profiler's operator classes as fractions of a step
(:mod:`glowflow.bench.breakdown`), so a regression shows where it is.
"""

from __future__ import annotations

import contextlib
import os
import resource
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ContextManager, Optional

import torch
from torch import nn

from ..allocator import tune_allocator
from ..config_base import FlowConfig
from ..precision import DTYPES
from .breakdown import time_breakdown
from .configs import event_shape, spec_config
from .machine_limit import count_flops, fraction_of_limit, matmul_rate

Result = dict[str, Any]
"""A spec or a result: JSON-compatible."""


def _rates(
    fn: Callable[[], object],
    batch: int,
    repeats: int,
    iterations: int,
    sync: Callable[[], None],
) -> list[float]:
    """Images/s of ``repeats`` timed runs of ``iterations`` calls (warm ``fn`` up first)."""
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(iterations):
            fn()
        sync()
        rates.append(batch * iterations / (time.perf_counter() - start))
    return rates


def _warm_up(fn: Callable[[], object], calls: int, sync: Callable[[], None]) -> None:
    for _ in range(calls):
        fn()
    sync()


def _minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _summary(rates: list[float]) -> dict[str, Any]:
    return {"median": statistics.median(rates), "best": max(rates), "runs": rates}


def _current_rss_mb() -> Optional[float]:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes vs KiB


def setup_process(
    spec: Result,
) -> tuple[FlowConfig, torch.device, torch.Tensor, Callable[[], None]]:
    """A measuring process's set-up from its spec: the allocator, the threads, the config (in
    the spec's memory mode), the device, a fixed uniform batch ``x`` in ``[-1/2, 1/2)`` and the
    device sync."""
    tune_allocator(spec["allocator"])
    torch.set_num_threads(spec["threads"])
    config = spec_config(spec)
    device = torch.device(spec["device"])
    generator = torch.Generator().manual_seed(0)
    x = (torch.rand(spec["batch"], *event_shape(config), generator=generator) - 0.5).to(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    torch.backends.cudnn.benchmark = True
    return config, device, x, sync


def allow_tf32(enabled: bool) -> None:
    """Let CUDA matmuls and cuDNN convolutions use TF32 (``True``) or not, process-wide."""
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled


@dataclass
class Tasks:
    """What the benchmark times for one model on one batch: any implementation (glowflow's,
    or a peer's through its runner in :mod:`glowflow.bench.runners`) is measured by the same
    code.

    Attributes:
        model: the module trained (its parameters size the optimizer state).
        train_step: one optimizer step on the batch (forward, backward, clipping, Adam);
            returns the loss as a device tensor.
        sample: draws a batch of samples (run in eval mode under ``inference_mode``).
        encode: encodes the batch (likewise).
        round_trip_error: ``max |decode(encode(x)) - x|`` (``None``: not measured).
        plain_autograd: a context in which ``train_step`` runs with plain autograd, where the
            FLOPs are counted: the model's own, without a memory mode's recomputation.
    """

    model: nn.Module
    train_step: Callable[[], torch.Tensor]
    sample: Callable[[], object]
    encode: Callable[[], object]
    round_trip_error: Optional[Callable[[], float]] = None
    plain_autograd: Callable[[], ContextManager[object]] = contextlib.nullcontext


def measure_training(
    spec: Result, tasks: Tasks, batch: int, device: torch.device, sync: Callable[[], None]
) -> Result:
    """Training images/s, FLOPs per image, peak memory (of this process so far) and where a
    step's time goes (``train_breakdown``, :func:`glowflow.bench.breakdown.time_breakdown` of
    three profiled steps after the timing).

    On CPU: ``peak_rss_mb`` (the whole process), ``training_rss_mb`` (its growth from just
    before the first step) and ``activation_rss_mb`` (that growth less ``state_mb``, the
    gradients and Adam moments, 3 x the parameters' bytes); ``page_faults_per_step``, minor
    page faults per timed step, shows allocator churn (see ``allocator``).
    ``train_flops_per_image`` is counted on one more step, after the timing, with plain
    autograd (the model's FLOPs, not a memory mode's recomputation).
    """
    parameters = list(tasks.model.parameters())
    state = 3 * sum(p.numel() * p.element_size() for p in parameters) / 2**20
    losses: list[torch.Tensor] = []

    def step() -> None:
        losses.append(tasks.train_step())

    baseline = _current_rss_mb()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    _warm_up(step, spec["warmup"], sync)
    faults = _minor_faults()
    rates = _rates(step, batch, spec["repeats"], spec["iterations"], sync)
    faults = (_minor_faults() - faults) / (spec["repeats"] * spec["iterations"])
    memory: Result
    if device.type == "cuda":
        memory = {"peak_allocated_mb": torch.cuda.max_memory_allocated(device) / 2**20}
    else:
        peak = _peak_rss_mb()
        training = None if baseline is None else peak - baseline
        memory = {
            "peak_rss_mb": peak,
            "baseline_rss_mb": baseline,
            "training_rss_mb": training,
            "activation_rss_mb": None if training is None else training - state,
            "page_faults_per_step": faults,
        }
    breakdown = time_breakdown(step)
    finite = bool(torch.isfinite(torch.stack(losses)).all())
    with tasks.plain_autograd():
        flops = count_flops(tasks.train_step) / batch
    return {
        "train_images_per_s": _summary(rates),
        **memory,
        "state_mb": state,
        "parameters": sum(p.numel() for p in parameters),
        "loss_finite": finite,
        "train_flops_per_image": flops,
        "train_breakdown": breakdown,
    }


def measure_generation(spec: Result, tasks: Tasks, batch: int, sync: Callable[[], None]) -> Result:
    """Sampling and encoding images/s (eval mode, ``inference_mode``), where their time goes
    (``sample_breakdown``, ``encode_breakdown``), the sampling FLOPs per image and the
    round-trip error."""
    allow_tf32(False)
    tasks.model.eval()
    result: Result = {}
    with torch.inference_mode():
        for name, fn in {"sample": tasks.sample, "encode": tasks.encode}.items():
            _warm_up(fn, spec["warmup"], sync)
            rates = _rates(fn, batch, spec["repeats"], spec["iterations"], sync)
            result[f"{name}_images_per_s"] = _summary(rates)
            result[f"{name}_breakdown"] = time_breakdown(fn)
        result["sample_flops_per_image"] = count_flops(tasks.sample) / batch
        if tasks.round_trip_error is not None:
            result["reconstruction_max_abs_error"] = tasks.round_trip_error()
    return result


def measure_limits(spec: Result, result: Result, device: torch.device) -> Result:
    """The matmul rate (FLOP/s) of fp32 and of ``spec["precision"]`` on ``device`` (and of TF32
    when ``spec["tf32"]`` on CUDA), and each throughput in ``result`` as a fraction of
    ``rate / flops_per_image``: training against the rate it ran at (TF32 with ``tf32``),
    sampling and encoding (counted as sampling's FLOPs, its mirror image) against the
    precision's, since they never use TF32."""
    rates = {
        name: matmul_rate(DTYPES[name], device)
        for name in dict.fromkeys(("fp32", spec["precision"]))
    }
    train_rate = rates[spec["precision"]]
    if spec["tf32"] and device.type == "cuda":
        allow_tf32(True)
        rates["tf32"] = matmul_rate(torch.float32, device)
        allow_tf32(False)
        if spec["precision"] == "fp32":
            train_rate = rates["tf32"]
    fractions = {
        "train": fraction_of_limit(
            result["train_images_per_s"]["median"], result["train_flops_per_image"], train_rate
        )
    }
    for task in ("sample", "encode"):
        if f"{task}_images_per_s" in result:
            fractions[task] = fraction_of_limit(
                result[f"{task}_images_per_s"]["median"],
                result["sample_flops_per_image"],
                rates[spec["precision"]],
            )
    return {"matmul_flops_per_s": rates, "fraction_of_limit": fractions}


def measure_tasks(spec: Result, tasks: Tasks, x: torch.Tensor, sync: Callable[[], None]) -> Result:
    """Everything for one process: training, then (``spec["generate"]``) sampling and encoding
    with the trained model (after peak training memory has been read), then the limits."""
    batch = x.shape[0]
    result = measure_training(spec, tasks, batch, x.device, sync)
    if spec["generate"]:
        result.update(measure_generation(spec, tasks, batch, sync))
    return {**result, **measure_limits(spec, result, x.device)}
