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

  so activation memory is ``O(1)`` in depth (one step's graph at a time) for about one extra
  forward and one inverse per step. Rebuilt inputs carry the inverse's rounding error, which
  stays far below float32 training noise for well-conditioned steps; in float64 the gradients
  equal plain autograd's to ~1e-12.

The memory-saving modes only apply when a gradient is wanted (``torch.is_grad_enabled()`` and
the input or some step parameter requires grad) and every :class:`ActNorm` in the level is
initialized; otherwise the steps run plainly, so the data-dependent initialization (and
encoding under ``no_grad``) never goes through a recomputing path.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable
from torch.utils.checkpoint import checkpoint

from .bijectors.actnorm import ActNorm
from .bijectors.base import zero_logdet

MEMORY_MODES = ("none", "checkpoint", "invertible")

StepRunner = Callable[[Sequence[nn.Module], Tensor, Optional[Tensor]], tuple[Tensor, Tensor]]


def check_memory_mode(name: str) -> str:
    """Return ``name`` if it is one of :data:`MEMORY_MODES`, else raise ``ValueError``."""
    if name not in MEMORY_MODES:
        raise ValueError(f"memory_mode must be one of {MEMORY_MODES}, got {name!r}")
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


def _trainable(step: nn.Module) -> list[Tensor]:
    return [p for p in step.parameters() if p.requires_grad]


class _InvertibleSteps(torch.autograd.Function):
    """Autograd node for a run of invertible steps that stores only the run's output.

    ``apply(h, context, steps, *params)``, ``params`` the trainable parameters of ``steps`` in
    order (inputs, so autograd routes their gradients); returns ``(h_K, log-det (B,))``.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        h: Tensor,
        context: Optional[Tensor],
        steps: Sequence[nn.Module],
        *params: Tensor,
    ) -> tuple[Tensor, Tensor]:
        output, logdet = run_plain(steps, h, context)
        ctx.steps = steps
        ctx.save_for_backward(output, context)
        return output, logdet

    @staticmethod
    @once_differentiable
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad_h: Tensor, grad_logdet: Tensor
    ) -> tuple[Optional[Tensor], ...]:
        output, context = ctx.saved_tensors
        context_grad = context is not None and ctx.needs_input_grad[1]
        grad_context: Optional[Tensor] = None
        param_grads: list[tuple[Optional[Tensor], ...]] = []
        h = output.detach()
        for index in reversed(range(len(ctx.steps))):
            step = ctx.steps[index]
            with torch.no_grad():
                h, _ = step.inverse(h, context)
            want_input = index > 0 or ctx.needs_input_grad[0]
            h = h.detach().requires_grad_(want_input)
            params = _trainable(step)
            inputs = ([h] if want_input else []) + params + ([context] if context_grad else [])
            with torch.enable_grad():
                step_output, step_logdet = step(h, context)
            grads = torch.autograd.grad(
                (step_output, step_logdet), inputs, (grad_h, grad_logdet), allow_unused=True
            )
            if want_input:
                grad_h, grads = grads[0], grads[1:]
            param_grads.append(grads[: len(params)])
            if context_grad:
                grad_context = grads[-1] if grad_context is None else grad_context + grads[-1]
            h = h.detach()
        flat = [grad for grads in reversed(param_grads) for grad in grads]
        grad_input = grad_h if ctx.needs_input_grad[0] else None
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
    if any(isinstance(m, ActNorm) and not m._is_initialized for m in modules):
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
