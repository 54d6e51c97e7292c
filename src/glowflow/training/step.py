"""One training step, shared by the trainer and the benchmark.

A step on a batch of integer levels ``k`` (labels ``y``, dequantization draws ``noise``):

1. ``loss = mean_i bpd_i + w * CE(class_logits, y)`` through :class:`Objective` (the module
   that DDP and ``torch.compile`` wrap), ``bpd_i`` the dequantization bound of image ``i``
   (:mod:`glowflow.dequantization`), its networks in the objective's precision
   (:mod:`glowflow.precision`);
2. ``loss.backward()`` -- in fp16, ``(S * loss).backward()`` with a
   :class:`torch.amp.GradScaler`'s scale ``S``, then ``scaler.unscale_`` divides the gradients
   by ``S`` -- then gradient-norm clipping (the norm before clipping is reported);
3. ``ok = isfinite(loss) and isfinite(grad norm)``, a device tensor; the optimizer step (and
   the EMA update) happen only where ``ok`` holds; the scaler then updates ``S`` from its own
   overflow flags (halved after an overflow, doubled after 2,000 clean steps).

No host sync happens inside a step: a fused optimizer (CUDA Adam) reads ``ok`` on the device
through its ``found_inf`` input and skips the update there; other optimizers read it on the
host, which costs nothing on CPU. The scaler is used without its ``step`` (which reads its
overflow flag on the host for a non-fused optimizer): ``unscale_`` and ``update`` keep their
flags and the scale on the device, and an overflow makes the gradient norm infinite, so
``ok`` already skips that step. Under DDP every rank runs the backward pass and the gradients
are averaged, so a non-finite loss on any rank makes the gradient norm non-finite on all of them
and every rank skips the same step.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from ..errors import ConfigError
from ..flow import Flow, log_prob_of
from ..metrics import bits_per_dim
from ..precision import check_precision, make_grad_scaler, network_precision
from .batches import noise_generator, seed_step_randomness
from .config import TrainConfig
from .ema import EMA
from .schedule import LRSchedule


class Objective(nn.Module):
    """The training loss of a flow on integer levels: ``(loss, mean bits/dim)``.

    ``x, log q = dequantizer(k, noise)``; ``bpd_i = bits_per_dim(log p(x_i) - log q_i)`` (the
    variational bound; the uniform dequantizer has ``log q = 0``);
    ``loss = mean_i bpd_i + class_loss_weight * CE(logits, y)``; with ``noise_augment =
    sigma`` the flow reads ``x + sigma eps`` (TarFlow's sampling mode; its training bits/dim
    are then of the noisy data), the logits from the class-
    conditional prior's classifier head on the top latent before the prior (the official
    Glow code's ``ycond`` loss). The head is the objective's business: a flow's own output is
    only ``log p(x | y)``. ``precision`` (``"fp32"``, ``"bf16"``, ``"fp16"``) is what the
    networks compute in; the flow's own arithmetic and every log-det stay float32.
    """

    def __init__(
        self,
        flow: Flow,
        dequantizer: nn.Module,
        class_loss_weight: float = 0.0,
        precision: str = "fp32",
        noise_augment: float = 0.0,
    ) -> None:
        super().__init__()
        if class_loss_weight and flow.num_classes is None:
            raise ConfigError("class_loss_weight needs a class-conditional flow (num_classes)")
        self.flow = flow
        self.dequantizer = dequantizer
        self.class_loss_weight = class_loss_weight
        self.precision = check_precision(precision)
        self.noise_augment = noise_augment

    def forward(
        self, levels: Tensor, y: Optional[Tensor], noise: Tensor, gaussian: Optional[Tensor] = None
    ) -> tuple[Tensor, Tensor]:
        """Levels ``(B, *event_shape)``, their dequantization draws and, with
        ``noise_augment``, standard normal draws of the same shape -> ``(loss, mean
        bits/dim)``, both 0-dim."""
        with network_precision(self.precision, levels.device):
            return self._loss(levels, y, noise, gaussian)

    def _loss(
        self, levels: Tensor, y: Optional[Tensor], noise: Tensor, gaussian: Optional[Tensor]
    ) -> tuple[Tensor, Tensor]:
        x, log_q = self.dequantizer(levels, noise)
        if self.noise_augment:  # TarFlow's sampling mode: the density of x + sigma eps
            assert gaussian is not None
            x = x + self.noise_augment * gaussian
        encoding = self.flow.forward_levels(x, y)
        log_bound = log_prob_of(encoding) - log_q
        bpd = bits_per_dim(log_bound, self.flow.num_dims, self.dequantizer.n_bins).mean()
        if not self.class_loss_weight:
            return bpd, bpd
        assert y is not None
        logits = self.flow.class_logits(encoding)
        return bpd + self.class_loss_weight * F.cross_entropy(logits, y), bpd


class StepOutput(NamedTuple):
    """What :func:`training_step` returns, all 0-dim tensors on the training device."""

    bpd: Tensor
    grad_norm: Tensor
    ok: Tensor


def fused_adam(device: torch.device) -> bool:
    """Whether Adam and AdamW run fused (one kernel for every parameter) on ``device``."""
    return device.type in ("cuda", "cpu")


def make_optimizer(
    name: str,
    parameters: list[nn.Parameter],
    lr: float,
    device: torch.device,
    weight_decay: float = 0.0,
) -> torch.optim.Optimizer:
    """Adam or AdamW (decoupled ``weight_decay``) or Adamax. Adam and AdamW are fused on CUDA
    and CPU: one kernel updates every parameter (on a 2-core CPU 3.4 ms a ``cifar10-small``
    step against 12.9 ms for the per-operation ``foreach`` path), and a skipped step needs no
    host sync."""
    fused = fused_adam(device) or None
    if name == "adam":
        return torch.optim.Adam(parameters, lr=lr, fused=fused)
    if name == "adamw":
        return torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay, fused=fused)
    if name == "adamax":
        return torch.optim.Adamax(parameters, lr=lr)
    raise ConfigError(f"optimizer must be adam, adamw or adamax, got {name!r}")


def training_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    inputs: tuple[Optional[Tensor], ...],
    max_grad_norm: float,
    ema: Optional[EMA] = None,
    ema_step: int = 0,
    scaler: Optional[torch.amp.GradScaler] = None,
) -> StepOutput:
    """One optimizer step of ``model`` (an :class:`Objective`, possibly DDP-wrapped) on
    ``inputs`` (its arguments: levels, labels or ``None``, dequantization draws); ``scaler``
    scales the loss (fp16, :func:`glowflow.precision.make_grad_scaler`).

    See the module docstring. ``max_grad_norm <= 0`` turns clipping off (the norm is still
    measured). Returns the batch's mean bits/dim, the gradient norm and whether the step was
    taken, without reading any of them on the host.
    """
    optimizer.zero_grad(set_to_none=True)
    loss, bpd = model(*inputs)
    if scaler is None:
        loss.backward()
    else:
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
    params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    max_norm = max_grad_norm if max_grad_norm > 0 else float("inf")
    grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
    ok = torch.isfinite(loss.detach()) & torch.isfinite(grad_norm)
    if optimizer.defaults.get("fused"):
        optimizer.found_inf = (~ok).float()  # type: ignore[attr-defined]
        optimizer.step()
    elif bool(ok):
        optimizer.step()
    if scaler is not None:
        scaler.update()
    if ema is not None:
        ema.update(_unwrap(model).flow, ema_step, ok)
    return StepOutput(bpd.detach(), grad_norm.detach(), ok)


def _unwrap(model: nn.Module) -> Objective:
    inner = getattr(model, "_orig_mod", model)  # torch.compile keeps the module as ._orig_mod
    inner = getattr(inner, "module", inner)  # DistributedDataParallel keeps it as .module
    assert isinstance(inner, Objective)
    return inner


class TrainingParts(NamedTuple):
    """What a run optimizes: the objective over ``flow`` and ``dequantizer``, its optimizer,
    the learning-rate schedule and the fp16 loss scaler (``None`` in other precisions)."""

    objective: Objective
    optimizer: torch.optim.Optimizer
    schedule: LRSchedule
    scaler: Optional[torch.amp.GradScaler]


def training_parts(
    flow: Flow, dequantizer: nn.Module, config: TrainConfig, device: torch.device
) -> TrainingParts:
    """The :class:`TrainingParts` of a run's ``config`` (loss weights, precision, noise,
    optimizer, schedule) for its ``flow`` and ``dequantizer``, on ``device``."""
    objective = Objective(
        flow, dequantizer, config.class_loss_weight, config.precision, config.noise_augment
    )
    optimizer = make_optimizer(
        config.optimizer, list(objective.parameters()), config.lr, device, config.weight_decay
    )
    schedule = LRSchedule(config.lr, config.warmup_steps, config.max_steps, config.lr_schedule)
    return TrainingParts(objective, optimizer, schedule, make_grad_scaler(config.precision, device))


def wrapped(objective: Objective, config: TrainConfig, distributed_run: bool) -> nn.Module:
    """The module the steps call: the objective, under DDP when ``distributed_run``, compiled
    (forward and backward; the optimizer step stays eager) with ``config.compile``."""
    model: nn.Module = objective
    if distributed_run:
        device = next(objective.parameters()).device
        model = DistributedDataParallel(
            objective,
            device_ids=[device] if device.type == "cuda" else None,
            find_unused_parameters=config.conditional and config.class_loss_weight == 0,
        )
    return torch.compile(model) if config.compile else model


def step_inputs(
    levels: Tensor,
    labels: Tensor,
    dequantizer: nn.Module,
    config: TrainConfig,
    step: int,
    rank: int,
    world_size: int,
) -> tuple[Optional[Tensor], ...]:
    """The objective's inputs for one step of one process: the ``levels`` (on the run's
    device) and, for conditional runs, the labels moved there, the step's dequantization draws and, with
    ``noise_augment``, its Gaussian noise. The step's randomness comes from the step alone
    (:func:`~.batches.seed_step_randomness`, :func:`~.batches.noise_generator`), so a resumed
    run repeats an uninterrupted one."""
    device = levels.device
    where = (config.seed, step, rank, world_size)
    seed_step_randomness(*where)
    generator = noise_generator(device, *where)
    y = labels.to(device, non_blocking=True) if config.conditional else None
    inputs: tuple[Optional[Tensor], ...] = (levels, y, dequantizer.noise(levels, generator))
    if config.noise_augment:
        inputs += (torch.randn(levels.shape, generator=generator, device=device),)
    return inputs
