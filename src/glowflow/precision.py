"""Mixed precision that keeps the flow exact: networks in bf16 or fp16, the flow in fp32.

``precision`` names the dtype the coupling, exit and prior *networks* compute in:

* ``"fp32"``: everything in float32 (no autocast);
* ``"bf16"``: ``torch.autocast(device, torch.bfloat16)`` around the call; bfloat16 keeps
  float32's exponent range, so no loss scaling is needed;
* ``"fp16"``: ``torch.autocast(device, torch.float16)``, and training scales the loss with a
  :class:`torch.amp.GradScaler` (:func:`make_grad_scaler`) so small gradients survive fp16.

Autocast lowers only matmul-like operations (convolutions, ``mm``, ``linear``); everything the
flow itself computes stays in the input's dtype (float32) because the library opts out where it
matters (:func:`glowflow.bijectors.base.outside_autocast` around the 1x1 convolutions and the
class-conditional prior) and casts each network's output back to its input's dtype before the
affine or additive update. A coupling's network reads the part of its input the coupling leaves
unchanged, bit for bit the same in encoding and decoding, so it gives bit-identical outputs in
both directions and ``decode(encode(x))`` is exact to float32 rounding in every precision; the
log-determinants and prior terms are float32 sums. The same holds under a user's own
``torch.autocast``.
"""

from __future__ import annotations

import contextlib
from typing import ContextManager, Optional

import torch

from .errors import ConfigError

PRECISIONS = ("fp32", "bf16", "fp16")
"""The precisions networks may run in (``--precision``)."""

DTYPES: dict[str, torch.dtype] = {
    "fp32": torch.float32,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}
"""Each precision's dtype."""


AUTO = "auto"
"""The precision that picks itself: :func:`fast_precision` of the device."""

SAMPLING_PRECISIONS = (AUTO, *PRECISIONS)
"""What sampling may run its networks in (``Flow.sample(precision=...)``, ``glowflow sample
--precision``): ``auto`` or one of :data:`PRECISIONS`."""


def has_bf16_matrix_units(device: torch.device) -> bool:
    """Whether ``device`` multiplies bf16 matrices in hardware: a CUDA GPU that supports bf16,
    or a CPU with AVX-512 BF16 or AMX tiles (where oneDNN's bf16 convolutions and matmuls
    beat fp32's); ``False`` elsewhere (other CPUs emulate bf16 and run it slower than fp32)."""
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, probe, lambda: False)()) for probe in probes)


def fast_precision(device: torch.device) -> str:
    """The fastest precision ``device`` runs networks well in: ``"bf16"`` where it has bf16
    matrix units (:func:`has_bf16_matrix_units`), else ``"fp32"``."""
    return "bf16" if has_bf16_matrix_units(device) else "fp32"


def sampling_precision(
    name: Optional[str], device: torch.device, dtype: torch.dtype = torch.float32
) -> str:
    """The precision sampling runs in: ``name``, or for ``None`` / ``"auto"`` the device's
    :func:`fast_precision` for a float32 model (a float64 one, kept in float64 on purpose,
    samples in its own dtype: ``"fp32"``, no autocast). A sample need not round-trip bit for
    bit, so it may take bf16; ``decode`` of given latents, ``encode`` and evaluation keep their
    fp32 default."""
    if name is None or name == AUTO:
        return fast_precision(device) if dtype == torch.float32 else "fp32"
    if name not in SAMPLING_PRECISIONS:
        raise ConfigError(f"sampling precision must be one of {SAMPLING_PRECISIONS}, got {name!r}")
    return name


def check_precision(name: str) -> str:
    """Return ``name`` if it is one of :data:`PRECISIONS`, else raise ``ValueError``."""
    if name not in PRECISIONS:
        raise ConfigError(f"precision must be one of {PRECISIONS}, got {name!r}")
    return name


def network_precision(name: str, device: torch.device) -> ContextManager[object]:
    """The context a model call runs in for precision ``name`` on ``device``: autocast to bf16
    or fp16 (the networks compute in it; the flow's arithmetic opts out), nothing for fp32."""
    if check_precision(name) == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=DTYPES[name])


def make_grad_scaler(name: str, device: torch.device) -> Optional[torch.amp.GradScaler]:
    """A loss scaler for fp16 training (``None`` otherwise): the loss is multiplied by a scale
    ``S`` (starting at 2^16) before the backward pass and the gradients divided by it before
    clipping; an overflow skips the step and halves ``S``, and 2,000 steps without one double
    it. Its state stays on the device (see :func:`glowflow.training.step.training_step`)."""
    if check_precision(name) != "fp16":
        return None
    return torch.amp.GradScaler(device.type)
