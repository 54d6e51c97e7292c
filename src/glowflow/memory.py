"""Memory modes: how a level's flow steps are run when gradients are needed.

A Glow level applies ``K`` flow steps ``h_k = f_k(h_{k-1})`` with log-determinants
``l_k = log|det df_k/dh_{k-1}|``; the loss sees ``h_K`` and ``L = sum_k l_k``. Plain autograd
keeps every step's internal activations (the coupling network's hidden maps dominate), so
activation memory grows as ``O(K)``. Three modes (:data:`MEMORY_MODES`):

* ``"none"``: plain autograd.
* ``"checkpoint"``: :func:`torch.utils.checkpoint.checkpoint` per step: only each step's input
  ``h_{k-1}`` is stored, its internals are recomputed in the backward pass (``O(K)`` inputs,
  ``O(1)`` internals; one extra forward per step).
* ``"invertible"``: nothing per step is stored. The level's forward runs without a graph and
  keeps only its output ``h_K``. The backward pass walks the steps in reverse: it rebuilds
  ``h_{k-1} = f_k^{-1}(h_k)`` with the step's own inverse, recomputes ``(h_k, l_k) = f_k(h_{k-1})``
  under ``enable_grad`` to get the step's local graph, and backpropagates through it

      ``dLoss/dh_{k-1} = J_k^T dLoss/dh_k + (dl_k/dh_{k-1}) dLoss/dL``,
      ``dLoss/dtheta_k = (dh_k/dtheta_k)^T dLoss/dh_k + (dl_k/dtheta_k) dLoss/dL``,

  so activation memory is ``O(1)`` in depth (one step's graph at a time). The work is done
  layer by layer through each layer's public hook :meth:`glowflow.Bijector.rebuild`; a
  coupling's network reads only the part it leaves unchanged, so its hook runs the network
  once (with a graph) for both its inverse and its recomputed forward: the
  price is about one extra network forward per step (training ~1.4x slower than ``"none"`` on
  ``cifar10-small``). Rebuilt inputs carry the inverse's rounding error, far below float32
  training noise for well-conditioned steps; in float64 the gradients equal plain autograd's
  to ~1e-10 or better. The recomputation runs under the forward pass's autocast state;
  double backward is not supported.

The memory-saving modes only apply when a gradient is wanted (``torch.is_grad_enabled()`` and
the input or some step parameter requires grad) and every :class:`ActNorm` in the level is
initialized; otherwise the steps run plainly, so the data-dependent initialization (and
encoding under ``no_grad``) never goes through a recomputing path.

On CPU, :func:`glowflow.allocator.retain_freed_memory` keeps the recomputing modes (and
sampling) from paying for page faults on every freed-and-reallocated activation.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable
from torch.utils.checkpoint import checkpoint

from .bijectors.actnorm import ActNorm
from .bijectors.base import Bijector, zero_logdet
from .bijectors.chain import Chain
from .config import GlowConfig
from .errors import ConfigError

MEMORY_MODES: tuple[str, ...] = GlowConfig.choices("memory_mode") or ()

StepRunner = Callable[[Sequence[nn.Module], Tensor, Optional[Tensor]], tuple[Tensor, Tensor]]


def check_memory_mode(name: str) -> str:
    """Return ``name`` if it is one of :data:`MEMORY_MODES`, else raise ``ValueError``."""
    if name not in MEMORY_MODES:
        raise ConfigError(f"memory_mode must be one of {MEMORY_MODES}, got {name!r}")
    return name


def run_plain(
    steps: Sequence[nn.Module], h: Tensor, context: Optional[Tensor]
) -> tuple[Tensor, Tensor]:
    """``h -> f_K(...f_1(h))`` and the summed log-det ``(B,)`` with plain autograd."""
    total = zero_logdet(h)
    for step in steps:
        h, logdet = step(h, context)
        total = total + logdet
    return h, total


def run_checkpointed(
    steps: Sequence[nn.Module], h: Tensor, context: Optional[Tensor]
) -> tuple[Tensor, Tensor]:
    """As :func:`run_plain`, each step under non-reentrant activation checkpointing."""
    total = zero_logdet(h)
    for step in steps:
        h, logdet = checkpoint(step, h, context, use_reentrant=False)
        total = total + logdet
    return h, total


def _trainable(module: nn.Module) -> list[Tensor]:
    return [p for p in module.parameters() if p.requires_grad]


def _layers(steps: Sequence[Bijector]) -> list[Bijector]:
    """The steps' layers in application order (a :class:`Chain` is opened up)."""
    return [layer for step in steps for layer in (step if isinstance(step, Chain) else [step])]


class _InvertibleSteps(torch.autograd.Function):
    """Autograd node for a run of invertible steps that stores only the run's output.

    ``apply(h, context, steps, *params)``, ``params`` the trainable parameters of ``steps`` in
    order (inputs, so autograd routes their gradients); returns ``(h_K, log-det (B,))``. The
    backward pass asks each layer, last first, to :meth:`~glowflow.Bijector.rebuild` its input
    from its output, and backpropagates through the local graph that gives.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        h: Tensor,
        context: Optional[Tensor],
        steps: Sequence[Bijector],
        *params: Tensor,
    ) -> tuple[Tensor, Tensor]:
        output, logdet = run_plain(steps, h, context)
        ctx.steps, ctx.params = steps, params
        device = h.device.type  # the backward pass recomputes under the same autocast state
        ctx.autocast = (device, torch.get_autocast_dtype(device), torch.is_autocast_enabled(device))
        ctx.save_for_backward(output, context)
        return output, logdet

    @staticmethod
    @once_differentiable
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad_h: Tensor, grad_logdet: Tensor
    ) -> tuple[Optional[Tensor], ...]:
        output, context = ctx.saved_tensors
        context_inputs = [context] if context is not None and ctx.needs_input_grad[1] else []
        grad_context: Optional[Tensor] = None
        param_grads: dict[int, Tensor] = {}
        h = output.detach()
        device, dtype, enabled = ctx.autocast
        for layer in reversed(_layers(ctx.steps)):
            with torch.autocast(device, dtype, enabled):
                rebuilt = layer.rebuild(h, context)
            params = _trainable(layer)
            leaves = [leaf for leaf, _ in rebuilt.links]
            pairs = [(rebuilt.y, grad_h), (rebuilt.logdet, grad_logdet)]
            outputs, grad_outputs = zip(*[pair for pair in pairs if pair[0].requires_grad])
            grads = torch.autograd.grad(
                outputs,
                [rebuilt.x, *params, *leaves, *context_inputs],
                grad_outputs,
                allow_unused=True,
            )
            grad_x = grads[0] if grads[0] is not None else torch.zeros_like(rebuilt.x)
            for param, grad in zip(params, grads[1 : 1 + len(params)]):
                if grad is not None:
                    param_grads[id(param)] = grad + param_grads.get(id(param), 0)
            rest = grads[1 + len(params) :]
            for (_, value), grad in zip(rebuilt.links, rest):
                if grad is not None:  # the leaf stands for value(x): route its gradient to x
                    grad_x = grad_x + torch.autograd.grad(value, rebuilt.x, grad)[0]
            if context_inputs and rest[len(leaves)] is not None:
                extra = rest[len(leaves)]
                grad_context = extra if grad_context is None else grad_context + extra
            h, grad_h = rebuilt.x.detach(), grad_x
        grad_input = grad_h if ctx.needs_input_grad[0] else None
        flat = [param_grads.pop(id(param), None) for param in ctx.params]  # no extra refs
        return (grad_input, grad_context, None, *flat)


def run_invertible(
    steps: Sequence[nn.Module], h: Tensor, context: Optional[Tensor]
) -> tuple[Tensor, Tensor]:
    """As :func:`run_plain`, storing only the output; inputs are rebuilt by ``step.inverse``."""
    params = [p for step in steps for p in _trainable(step)]
    return _InvertibleSteps.apply(h, context, steps, *params)


_RUNNERS: dict[str, StepRunner] = {
    "none": run_plain,
    "checkpoint": run_checkpointed,
    "invertible": run_invertible,
}


def _needs_saving(steps: Sequence[nn.Module], h: Tensor) -> bool:
    """A graph is being built through the steps and every ActNorm in them is initialized."""
    if not torch.is_grad_enabled():
        return False
    modules = [m for step in steps for m in step.modules()]
    if any(isinstance(m, ActNorm) and not m.is_initialized for m in modules):
        return False
    return h.requires_grad or any(p.requires_grad for step in steps for p in step.parameters())


def run_steps(
    steps: Sequence[nn.Module], h: Tensor, context: Optional[Tensor], mode: str = "none"
) -> tuple[Tensor, Tensor]:
    """Apply ``steps`` in order to ``h`` ``(B, C, H, W)`` in memory mode ``mode``.

    Returns ``(f_K(...f_1(h)), sum_k log|det J_k|)``, the log-det of shape ``(B,)``; values and
    gradients are those of plain autograd whatever the mode (see the module docstring).
    """
    runner = _RUNNERS[check_memory_mode(mode)]
    if runner is run_plain or not _needs_saving(steps, h):
        return run_plain(steps, h, context)
    return runner(steps, h, context)
