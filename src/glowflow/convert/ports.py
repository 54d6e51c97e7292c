"""Converters for the PyTorch ports of the official Glow code: y0ast/Glow-PyTorch and
chaiyujin/glow-pytorch (y0ast's grew out of chaiyujin's; their layouts differ in names only).

Their architecture, read from their ``model.py``/``modules.py`` (``models.py`` for chaiyujin),
and the glowflow options that express it exactly:

* ``FlowNet.layers``: per level a ``SqueezeLayer`` (glowflow's squeeze), ``K`` ``FlowStep``\\ s
  and, but for the last level, a ``Split2d``; so level ``l``'s step ``k`` is
  ``layers[l * (K + 2) + 1 + k]`` and its split ``layers[l * (K + 2) + K + 1]``.
* ``FlowStep``: ``ActNorm2d`` ``(x + bias) * exp(logs)`` (glowflow's ActNorm), 1x1 conv
  (``weight``, or LU ``p``, ``sign_s``, ``lower``/``l``, ``upper``/``u``, ``log_s``; the
  ``reverse``/``shuffle`` permutations keep their indices outside the state dict), then the
  coupling: ``z1, z2`` the channel halves, ``h = NN(z1)``, ``shift, scale = h[:, 0::2],
  h[:, 1::2]`` (``coupling_output="interleaved"``), ``scale = sigmoid(scale + 2)``
  (``scale_fn="sigmoid"``), ``z2 = (z2 + shift) * scale`` (``coupling_shift="before_scale"``).
* ``NN``: ``Conv2d`` 3x3 without bias + ``ActNorm2d``, ReLU, ``Conv2d`` 1x1 + ActNorm, ReLU,
  ``Conv2dZeros`` (``conv * exp(3 logs)``): ``coupling_network="glow_actnorm"``.
* ``Split2d``: ``mean, logs = conv(z1)[:, 0::2], [:, 1::2]`` and ``log N(z2; mean, exp(logs))``
  (``exit_prior="gaussian"``, ``exit_output="interleaved"``).
* Top prior: ``h = learn_top(prior_h)`` with ``prior_h`` zeros, plus with ``y_condition``
  ``LinearZeros(y_onehot)``; ``mean, logs = h[:, :C], h[:, C:]``. A conv of zeros is its bias,
  so the learned top is a constant, computed here once with the ports' operations and stored in
  glowflow's (class-conditional) learned prior: ``mean(y) = h_mean + sum_k y_k W_k e``
  (``e = exp(3 logs)``), exact for one-hot and multi-hot ``y``. ``project_class``'s gain is
  folded into glowflow's classifier (the logits, not the likelihood).

Inputs: y0ast reads glowflow's ``x = k / 256 - 1/2 + U(0, 1/256)`` already. chaiyujin reads
``ToTensor`` images, ``x_c = k / 255`` (plus Gaussian noise of std 1/256 in training): the map
``x_c = (256/255) x + 127.5/255`` (bin centres onto ``k / 255``) is folded into the first
ActNorm, so ``log p(x) = log p_c(x_c) + D log(256/255)``.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from torch import Tensor

from ..config import GlowConfig
from ..errors import MissingFileError, ModelFileError
from ..store.data import DataSpec
from .common import (
    Converted,
    TensorMap,
    exit_network,
    fold_input_map,
    layer,
    read_torch_file,
    strip_prefix,
    zero_conv_of_constant,
)

GAIN = 3.0
"""The ports' ``logscale_factor`` of ``Conv2dZeros`` and ``LinearZeros``."""


@dataclass(frozen=True)
class PortNaming:
    """Where one port keeps each tensor (the rest of the layout is shared)."""

    name: str
    network: str  # the coupling network's attribute
    conv: str  # prefix of a conv's own weight inside its wrapper module
    lower: str  # LU factors of the 1x1 conv
    upper: str
    top: str  # learned top conv
    linear: str  # prefix of a LinearZeros' weight
    input_scale: float = 1.0
    input_offset: float = 0.0


Y0AST = PortNaming("y0ast", "block", "conv.", "lower", "upper", "learn_top_fn", "linear.")
CHAIYUJIN = PortNaming(
    "chaiyujin", "f", "", "l", "u", "learn_top", "", input_scale=256 / 255, input_offset=127.5 / 255
)


def _channels(t: Tensor) -> Tensor:
    """``(1, C, 1, 1)`` or ``(C, 1, 1)`` per-channel parameters as ``(C,)``."""
    return t.reshape(-1)


def _layout(state: dict[str, Tensor], path: Path) -> tuple[int, int, list[int]]:
    """``(L, K, split layer indices)`` read off the ``flow.layers.*`` keys."""
    steps = sorted(
        {
            int(m.group(1))
            for k in state
            if (m := re.match(r"flow\.layers\.(\d+)\.actnorm\.bias$", k))
        }
    )
    splits = sorted(
        {int(m.group(1)) for k in state if (m := re.match(r"flow\.layers\.(\d+)\.conv\.", k))}
    )
    if not steps:
        raise ModelFileError(
            f"{path} has no flow.layers.*.actnorm tensors: not a Glow-port checkpoint"
        )
    levels = len(splits) + 1
    per_level, remainder = divmod(len(steps), levels)
    expected = [
        level * (per_level + 2) + 1 + k for level in range(levels) for k in range(per_level)
    ]
    if remainder or steps != expected:
        raise ModelFileError(
            f"{path}: flow step layers {steps[:6]}... do not follow the ports' "
            f"squeeze, K steps, split layout"
        )
    return levels, per_level, splits


def _permutation(m: TensorMap, naming: PortNaming, hparams: dict[str, Any]) -> str:
    first = "flow.layers.1.invconv."
    if m.has(first + "weight"):
        return "invconv"
    if m.has(first + naming.lower):
        return "invconv_lu"
    name = hparams.get("flow_permutation") or hparams.get("Glow", {}).get("flow_permutation")
    if name == "reverse":
        return "reverse"
    raise ModelFileError(
        f"{m.path}: the checkpoint has no 1x1 convolutions, and its channel permutation "
        f"({name or 'not given: pass the hyper-parameter file'}) is not stored in the state "
        f"dict; only 'reverse' can be rebuilt"
    )


def _map_step(
    m: TensorMap, naming: PortNaming, source: str, target: tuple[int, int], permutation: str
) -> None:
    level, step = target
    actnorm, mixing, coupling = (layer(level, step, i) for i in range(3))
    m.put(f"{actnorm}.bias", _channels(m.take(f"{source}.actnorm.bias")))
    m.put(f"{actnorm}.log_scale", _channels(m.take(f"{source}.actnorm.logs")))
    if permutation == "invconv":
        m.put(f"{mixing}.weight", m.take(f"{source}.invconv.weight"))
    elif permutation == "invconv_lu":
        for ours, theirs in (
            ("permutation", "p"),
            ("sign_s", "sign_s"),
            ("log_s", "log_s"),
            ("lower", naming.lower),
            ("upper", naming.upper),
        ):
            m.put(f"{mixing}.{ours}", m.take(f"{source}.invconv.{theirs}"))
    net, conv = f"{source}.{naming.network}", naming.conv
    for theirs, ours in ((0, 0), (2, 3)):
        m.put(f"{coupling}.network.{ours}.weight", m.take(f"{net}.{theirs}.{conv}weight"))
        m.put(
            f"{coupling}.network.{ours + 1}.actnorm.bias",
            _channels(m.take(f"{net}.{theirs}.actnorm.bias")),
        )
        m.put(
            f"{coupling}.network.{ours + 1}.actnorm.log_scale",
            _channels(m.take(f"{net}.{theirs}.actnorm.logs")),
        )
    m.put(f"{coupling}.network.6.conv.weight", m.take(f"{net}.4.{conv}weight"))
    m.put(f"{coupling}.network.6.conv.bias", m.take(f"{net}.4.{conv}bias"))
    m.put(f"{coupling}.network.6.log_gain", m.take(f"{net}.4.logs").reshape(-1, 1, 1))


def _map_top(
    m: TensorMap,
    naming: PortNaming,
    top_shape: tuple[int, int, int],
    learn_top: bool,
    classes: Optional[int],
) -> None:
    """The learned (class-conditional) top prior and the classifier."""
    with m.fitting("the learned top prior and the classifier"):
        channels = top_shape[0]
        h = torch.zeros(2 * channels, *top_shape[1:])
        if learn_top:
            h = zero_conv_of_constant(
                m.take(f"{naming.top}.{naming.conv}weight"),
                m.take(f"{naming.top}.{naming.conv}bias"),
                m.take(f"{naming.top}.logs"),
                GAIN,
                (2 * channels, *top_shape[1:]),
                0.0,
            )
        if classes is not None:
            weight = m.take(f"project_ycond.{naming.linear}weight")  # (2C, K)
            gain = torch.exp(m.take("project_ycond.logs") * GAIN)  # (2C,)
            h = h + (m.take(f"project_ycond.{naming.linear}bias") * gain)[:, None, None]
            table = (weight * gain[:, None]).T.reshape(classes, 2, channels, 1, 1)
            m.put("bijector.top_prior.class_table", table.expand(-1, -1, -1, *top_shape[1:]))
            class_gain = torch.exp(m.take("project_class.logs") * GAIN)  # (K,)
            m.put(
                "bijector.top_prior.classifier.weight",
                m.take(f"project_class.{naming.linear}weight") * class_gain[:, None],
            )
            m.put(
                "bijector.top_prior.classifier.bias",
                m.take(f"project_class.{naming.linear}bias") * class_gain,
            )
        if learn_top or classes is not None:
            m.put("bijector.top_prior.mean", h[:channels].contiguous())
            m.put("bijector.top_prior.log_sigma", h[channels:].contiguous())


def read_hparams(path: Optional[Path]) -> dict[str, Any]:
    """A port's JSON hyper-parameter file (y0ast's ``hparams.json``, chaiyujin's
    ``hparams/*.json``), or ``{}``."""
    if path is None:
        return {}
    if not path.is_file():
        raise MissingFileError(f"hyper-parameter file {path} does not exist")
    try:
        return json.loads(path.read_text())
    except ValueError as error:
        raise ModelFileError(f"{path} is not JSON: {error}") from None


def convert_port(
    naming: PortNaming,
    path: Path,
    hparams_path: Optional[Path] = None,
    dataset: Optional[str] = None,
    n_bits: int = 8,
) -> Converted:
    """Convert a y0ast or chaiyujin checkpoint (a state dict, or chaiyujin's ``{"graph":
    state_dict, ...}`` package) into a glowflow model; the layout is read off the tensors."""
    loaded = read_torch_file(path)
    state = strip_prefix(loaded.get("graph", loaded), "module.", path)
    hparams = read_hparams(hparams_path)
    m = TensorMap(state, path)
    levels, steps, splits = _layout(state, path)
    permutation = _permutation(m, naming, hparams)
    first = math.prod(m.shape("flow.layers.1.actnorm.bias"))
    prior_h = m.shape("prior_h", 4)
    m.take("prior_h")
    top_channels = first // 4 * 2 ** (levels + 1)  # C 4^L channels, halved at L - 1 splits
    if prior_h[1] != 2 * top_channels:
        raise ModelFileError(
            f"{path}: tensor 'prior_h' has shape {prior_h}, the top of {first // 4}-channel "
            f"images after {levels} levels has {2 * top_channels} (mean and log-scale) channels"
        )
    top_shape = (top_channels, prior_h[2], prior_h[3])
    image = (first // 4, top_shape[1] * 2**levels, top_shape[2] * 2**levels)
    hidden, out = (
        m.shape(f"flow.layers.1.{naming.network}.{i}.{naming.conv}weight", 4)[0] for i in (0, 4)
    )
    coupling = "affine" if out == 4 * image[0] else "additive"
    learn_top = m.has(f"{naming.top}.logs")
    classes = (
        m.shape(f"project_ycond.{naming.linear}weight", 2)[1]
        if m.has("project_ycond.logs")
        else None
    )
    glow = GlowConfig(
        output_shape=image,
        num_glow_blocks=levels,
        num_steps_per_block=steps,
        hidden_channels=hidden,
        coupling=coupling,
        permutation=permutation,
        scale_fn="sigmoid",
        coupling_network="glow_actnorm",
        coupling_output="interleaved",
        coupling_shift="before_scale",
        exit_prior="gaussian",
        exit_output="interleaved",
        learn_top_prior=learn_top or classes is not None,
        num_classes=classes,
    )
    for level in range(levels):
        for step in range(steps):
            _map_step(
                m,
                naming,
                f"flow.layers.{level * (steps + 2) + 1 + step}",
                (level, step),
                permutation,
            )
    for level, index in enumerate(splits):
        source, target = f"flow.layers.{index}.conv.{naming.conv}", exit_network(level)
        m.put(f"{target}.conv.weight", m.take(f"{source}weight"))
        m.put(f"{target}.conv.bias", m.take(f"{source}bias"))
        m.put(f"{target}.log_gain", m.take(f"flow.layers.{index}.conv.logs").reshape(-1, 1, 1))
    _map_top(m, naming, top_shape, learn_top, classes)
    tensors = m.finish(glow)
    notes = [
        f"converted from {naming.name}'s layout; the learned top prior (a conv of zeros) "
        f"is stored as its constant output"
    ]
    if naming.input_scale != 1.0 or naming.input_offset != 0.0:
        fold_input_map(tensors, naming.input_scale, naming.input_offset)
        notes.append(
            f"the source reads x_source = {naming.input_scale:.9g} x + "
            f"{naming.input_offset:.9g}; folded into the first ActNorm, so log p(x) = "
            f"log p_source(x_source) + D log {naming.input_scale:.9g}"
        )
    data_name = dataset or hparams.get("dataset") or "unknown"
    data = DataSpec(
        data_name,
        image,
        2**n_bits,
        classes or _dataset_classes(data_name),
        n_bits=None if n_bits == 8 else n_bits,
    )
    source = {"kind": naming.name, "converted_from": str(path), "notes": notes}
    if hparams:
        source["hparams"] = str(hparams_path)
    return Converted(glow, tensors, data, source)


def _dataset_classes(name: str) -> Optional[int]:
    return {
        "cifar10": 10,
        "svhn": 10,
        "mnist": 10,
        "fashion-mnist": 10,
        "digits": 10,
        "celeba": 40,
    }.get(name)


def convert_y0ast(
    path: Path, hparams: Optional[Path] = None, dataset: Optional[str] = None, n_bits: int = 8
) -> Converted:
    """y0ast/Glow-PyTorch: ``glow_affine_coupling.pt`` (+ ``hparams.json`` beside it)."""
    if hparams is None and (path.parent / "hparams.json").is_file():
        hparams = path.parent / "hparams.json"
    return convert_port(Y0AST, path, hparams, dataset, n_bits)


def convert_chaiyujin(
    path: Path, hparams: Optional[Path] = None, dataset: Optional[str] = None, n_bits: int = 8
) -> Converted:
    """chaiyujin/glow-pytorch: ``trained.pkg`` / ``save_*k*.pkg`` (+ ``hparams/*.json``)."""
    return convert_port(CHAIYUJIN, path, hparams, dataset, n_bits)
