"""Where a step's time goes: ``torch.profiler``'s operators grouped into classes.

:func:`time_breakdown` profiles a few calls of a task and sums each operator's *self* time
(its own, without the operators it calls) by class (:data:`CLASSES`, :func:`operator_class`),
as fractions of the calls' wall time. ``outside operators`` is the rest: Python, the autograd
engine's bookkeeping between operators, and the profiler's own overhead (which makes every
figure a little larger than unprofiled). The classes:

* ``convolution``: oneDNN convolutions and their backward (the networks' matrix work);
* ``matmul``: ``mm``/``addmm``/``bmm``/``linear`` and attention (the transformers' and the 1x1
  matrices' small products);
* ``elementwise``: pointwise arithmetic and activations (the flow's own arithmetic, ReLU, their
  backward);
* ``reduction``: sums, means, norms (log-determinants, gradient clipping);
* ``cast``: dtype conversions (autocast's weight and activation casts);
* ``layout``: copies that move data without arithmetic (``cat``, ``contiguous``, reorders);
* ``optimizer``: the optimizer's step (Adam's moments and update);
* ``compiled``: the fused kernels of a ``torch.compile`` graph (Inductor's C++ kernels, whose
  inside the profiler does not see);
* ``other``: every other operator (allocation, random numbers, views).
"""

from __future__ import annotations

import time
from typing import Any, Callable

from torch.profiler import ProfilerActivity, profile

CLASSES = (
    "convolution",
    "matmul",
    "elementwise",
    "reduction",
    "cast",
    "layout",
    "optimizer",
    "compiled",
    "other",
)
"""The operator classes, in the order they are reported."""

OUTSIDE = "outside operators"
"""The part of the wall time no operator accounts for."""

_BY_NAME: dict[str, tuple[str, ...]] = {
    "convolution": ("convolution", "conv2d", "conv1d", "_convolution_pointwise"),
    "matmul": ("mm", "addmm", "bmm", "baddbmm", "matmul", "linear", "attention", "_weight_int"),
    "reduction": ("sum", "mean", "norm", "amax", "max", "min", "logsumexp", "var", "std"),
    "cast": ("_to_copy", "to"),
    "layout": (
        "copy_",
        "cat",
        "contiguous",
        "clone",
        "stack",
        "permute",
        "reorder",
        "pad",
        "constant_pad_nd",
        "index",
        "flip",
    ),
    "elementwise": (
        "add",
        "sub",
        "mul",
        "div",
        "exp",
        "log",
        "neg",
        "sqrt",
        "rsqrt",
        "pow",
        "sigmoid",
        "log_sigmoid",
        "softplus",
        "tanh",
        "relu",
        "threshold",
        "clamp",
        "clamp_min",
        "gelu",
        "silu",
        "where",
        "addcmul",
        "addcdiv",
        "lerp",
        "reciprocal",
        "abs",
        "sign",
        "fill",
        "zero",
        "masked_fill",
        "floor",
        "dropout",
        "native_layer_norm",
        "layer_norm",
        "softmax",
        "_softmax",
    ),
}


def _words(name: str) -> str:
    """An event's operator as lower-case letters and digits: ``"aten::mul_"`` -> ``"mul"``,
    ``"autograd::engine::evaluate_function: ConvolutionBackward0"`` -> ``"convolutionbackward0"``."""
    name = name.split(": ")[-1].split("::")[-1]
    return "".join(ch for ch in name.lower() if ch.isalnum())


_CLASS_OF_WORD = {
    "".join(ch for ch in word if ch.isalnum()): cls
    for cls, words in _BY_NAME.items()
    for word in words
}


def operator_class(name: str) -> str:
    """The class of a profiler event ``name`` (``"aten::mul_"``, ``"Optimizer.step#Adam.step"``,
    an autograd node such as ``"autograd::engine::evaluate_function: MulBackward0"``, or
    ``"## Call CompiledFxGraph ... ##"``); one of :data:`CLASSES`.

    >>> [operator_class(n) for n in ("aten::mkldnn_convolution", "aten::mul_", "aten::_to_copy")]
    ['convolution', 'elementwise', 'cast']
    >>> operator_class("autograd::engine::evaluate_function: ToCopyBackward0")
    'cast'
    """
    if name.startswith("Optimizer.") or name.startswith("aten::_fused_adam"):
        return "optimizer"
    if "CompiledFxGraph" in name or "Compiled" in name:
        return "compiled"
    word = _words(name)
    if word.startswith("foreachnorm"):
        return "reduction"  # gradient clipping's norms
    if word.startswith("foreach"):
        return "optimizer"
    word = word.split("backward")[0] if "backward" in word else word
    if word in ("tocopy", "to"):
        return "cast"
    if word in _CLASS_OF_WORD:
        return _CLASS_OF_WORD[word]
    for cls in ("convolution", "matmul"):  # mkldnn_convolution, _scaled_dot_product_attention
        if any(key in word for key in _BY_NAME[cls]):
            return cls
    if "backward" in _words(name):
        return "elementwise"  # threshold_backward, sigmoid_backward, ...
    return "other"


def _attribute(event: Any, totals: dict[str, float]) -> None:
    """Add ``event``'s time to its class; an event of class ``other`` or ``compiled`` (a
    container: a graph call, an autograd node of no known kind, a record_function) keeps only
    its self time and hands the rest to its children."""
    cls = operator_class(event.name)
    if cls in ("other", "compiled") and event.cpu_children:
        totals[cls] += event.self_cpu_time_total
        for child in event.cpu_children:
            _attribute(child, totals)
    else:
        totals[cls] += event.cpu_time_total


def time_breakdown(fn: Callable[[], object], calls: int = 3) -> dict[str, float]:
    """Profile ``calls`` calls of ``fn`` (warmed up by the caller) on the CPU side and return
    each class's share of their wall time, plus :data:`OUTSIDE`; the shares add up to 1.

    An operator's time goes to the class of the outermost operator that has one: ``aten::to``
    with the copy inside it is a cast, ``aten::conv2d`` with its oneDNN reorders a convolution,
    an autograd node such as ``ConvolutionBackward0`` its backward's class."""
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        wall_us = (time.perf_counter() - start) * 1e6
    totals = dict.fromkeys(CLASSES, 0.0)
    for event in profiler.events():
        if event.cpu_parent is None:
            _attribute(event, totals)
    accounted = sum(totals.values())
    wall_us = max(wall_us, accounted)
    shares = {cls: value / wall_us for cls, value in totals.items()}
    shares[OUTSIDE] = 1.0 - accounted / wall_us
    return shares
