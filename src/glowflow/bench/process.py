"""One glowflow measuring process: glowflow's :class:`~glowflow.bench.measure.Tasks` and
:func:`measure`, which ``python -m glowflow.bench SPEC_JSON`` runs.

The spec's options: ``precision`` runs the networks in bf16 or fp16 (:mod:`glowflow.precision`;
the flow's own arithmetic stays fp32, fp16 training scales its loss); ``allocator="retain"``
calls :func:`glowflow.allocator.retain_freed_memory` in the process (the CPU heap is kept
for reuse; ``"default"`` leaves glibc's malloc alone); ``channels_last`` stores the model's conv
weights and the batch channels-last; ``compile`` wraps the training objective (forward and
backward) in ``torch.compile`` and samples and encodes through :mod:`glowflow.compiled`
(the round-trip error and TarFlow's sequential sampling stay eager); ``tf32`` (CUDA) lets
training matmuls and convolutions use TF32 -- sampling and encoding always run without it, so
no reconstruction or bits/dim figure depends on it.
"""

from __future__ import annotations

import contextlib
import inspect
from typing import Any, Callable, Iterator

import torch

from ..compiled import compiled_call
from ..dequantization import UniformDequantizer
from ..flow import Flow
from ..precision import make_grad_scaler, network_precision
from ..training.config import TrainConfig
from ..training.step import Objective, fused_adam, make_optimizer, training_step
from .configs import build_model
from .measure import Result, Tasks, allow_tf32, measure_tasks, setup_process


def glowflow_tasks(spec: Result, flow: Flow, x: torch.Tensor) -> Tasks:
    """glowflow's tasks: the trainer's own step
    (:func:`glowflow.training.step.training_step`, Adam -- fused on CUDA and CPU --, the networks in
    ``spec["precision"]``, loss scaling in fp16, ``torch.compile`` with ``spec["compile"]``)
    on a fixed uniform batch; :meth:`Flow.sample` and :meth:`Flow.encode` in that precision,
    compiled with ``spec["compile"]``."""
    device = x.device
    allow_tf32(spec["tf32"])
    optimizer = make_optimizer("adam", list(flow.parameters()), 1e-4, device)
    objective = Objective(flow, UniformDequantizer(n_bins=256), precision=spec["precision"])
    scaler = make_grad_scaler(spec["precision"], device)
    # the batch as 8-bit levels and its dequantization draws: x = (k + u) / 256 - 1/2
    levels = torch.floor((x + 0.5) * 256).clamp(0, 255).long()
    inputs = (levels, None, (x + 0.5) * 256 - levels)
    model = torch.compile(objective) if spec["compile"] else objective
    max_grad_norm = TrainConfig().max_grad_norm

    def train_step() -> torch.Tensor:
        return training_step(model, optimizer, inputs, max_grad_norm, scaler=scaler).bpd

    def in_precision(fn: Callable[[], Any]) -> Callable[[], Any]:
        def call() -> Any:
            with network_precision(spec["precision"], device):
                return fn()

        return call

    def round_trip() -> float:
        return (flow.decode(flow.encode(x)) - x).abs().max().item()

    @contextlib.contextmanager
    def plain_autograd() -> Iterator[None]:
        bijector = flow.bijector
        if not hasattr(bijector, "memory_mode"):  # a family without memory modes
            yield
            return
        mode = bijector.memory_mode
        bijector.memory_mode = "none"
        try:
            yield
        finally:
            bijector.memory_mode = mode

    # a family whose sampling decodes through Flow.decode compiles it (TarFlow's sequential
    # inverse stays eager)
    compiled = spec["compile"] and "compile" in inspect.signature(flow.sample).parameters
    options = {"compile": True} if compiled else {}

    def sample() -> Any:
        return flow.sample(x.shape[0], precision=spec["precision"], **options)

    def encode() -> Any:
        return compiled_call(flow, "encode", x) if compiled else flow.encode(x)

    return Tasks(
        flow,
        train_step,
        sample,
        in_precision(encode),
        in_precision(round_trip),
        plain_autograd,
    )


def measure(spec: Result) -> Result:
    """One glowflow task, in this (fresh) process: train in ``spec["mode"]`` and
    ``spec["precision"]``, then sample and encode with the same model if ``spec["generate"]``."""
    config, device, x, sync = setup_process(spec)
    flow = build_model(config).to(device)
    flow.initialize(x)
    if spec["channels_last"]:
        flow.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    return {
        **measure_tasks(spec, glowflow_tasks(spec, flow, x), x, sync),
        "optimizer": f"Adam(fused={fused_adam(device)})",
    }
