"""Compiled encoding and decoding: ``torch.compile`` of a flow's ``encode`` and ``decode``.

``compiled_call(flow, "decode", latents, y)`` runs ``flow.decode(latents, y)`` through
``torch.compile`` (Inductor): one compiled function per flow class and method, recompiled by
dynamo for each flow instance and input shape it meets. Glow's ``encode`` and ``decode`` are
one graph each, with no graph break (tested with ``fullgraph=True``): inside a graph the 1x1
convolutions compute ``W``, ``W^{-1}`` and ``log|det W|`` from their parameters (``O(C^3)`` for
``C`` channels, next to the convolutions' ``O(B C^2 H W)``) rather than read their host-side
cache, and ActNorm's initialization flag is a constant. :func:`compiled_call` with gradients
disabled (sampling, encoding) checks each cache eagerly first and lets the graph read it
(:func:`glowflow.bijectors.invconv.cached_matrices_in_graphs`), so no call computes an
inverse for weights it has seen. Either way an optimizer step or a ``load_state_dict`` is
seen without recompiling.
Inductor fuses each step's elementwise work (the coupling's update, ActNorm's affine map, the
priors' scaling) around the convolutions, which is where the eager path loses its time at
small batches on a CPU (see the README's "Compiled sampling").

Compiling costs half a minute or more on a CPU the first time a shape is met, so it pays for
many batches, not for one grid of samples. Results equal the eager path's to fp32 rounding
(fused kernels may round in another order: tested within 1e-5).
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import torch
from torch import nn

from .bijectors.invconv import cached_matrices_in_graphs

COMPILED_METHODS = ("encode", "decode")
"""The flow methods :func:`compiled_call` compiles."""


@functools.cache
def _compiled(cls: type, method: str) -> Callable[..., Any]:
    return torch.compile(getattr(cls, method))


def compiled_call(flow: nn.Module, method: str, *args: Any) -> Any:
    """``getattr(flow, method)(*args)``, compiled; ``method`` one of :data:`COMPILED_METHODS`.
    With gradients disabled the graph reads the 1x1 convolutions' checked caches."""
    if method not in COMPILED_METHODS:
        raise ValueError(f"compiled_call: method must be one of {COMPILED_METHODS}, got {method!r}")
    function = _compiled(type(flow), method)
    if torch.is_grad_enabled():
        return function(flow, *args)
    with cached_matrices_in_graphs(flow):
        return function(flow, *args)
