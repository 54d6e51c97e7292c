"""Converter for rosinality/glow-pytorch checkpoints (``checkpoint/model_*.pt``, the state
dict of an ``nn.DataParallel``-wrapped ``Glow``).

Its architecture, read from its ``model.py``, and the glowflow options that express it:

* ``Glow.blocks``: ``n_block`` ``Block``\\ s, each a squeeze, ``n_flow`` ``Flow``\\ s and, but for
  the last, a split ``out, z_new = out.chunk(2, 1)``; the last block's whole output is the top
  latent.
* ``Flow``: ``ActNorm`` ``scale * (x + loc)`` with a free ``scale`` (glowflow's
  ``log_scale = log(scale)``, so every scale must be positive), ``InvConv2dLU`` (``w_p``,
  ``w_l``, ``w_s`` = log|s|, ``w_u``, ``s_sign``) or ``InvConv2d``, then ``AffineCoupling``:
  ``log_s, t = net(in_a).chunk(2, 1)`` (``coupling_output="scale_shift"``), ``s = sigmoid(
  log_s + 2)`` (``scale_fn="sigmoid"``), ``out_b = (in_b + t) * s``
  (``coupling_shift="before_scale"``); additive without ``--affine`` (its default).
* ``net``: conv3x3 -> ReLU -> conv1x1 -> ReLU -> ``ZeroConv2d``, which pads its input with
  **ones** before a 3x3 conv and scales by ``exp(3 scale)`` (``zero_conv_padding="ones"``).
* Split prior: ``mean, log_sd = prior(out).chunk(2, 1)``, ``log N(z_new; mean, exp(log_sd))``
  (``exit_prior="gaussian"``, ``exit_output="shift_scale"``).
* Top: ``mean, log_sd = prior(zeros).chunk(2, 1)``, a ``ZeroConv2d`` of zeros padded with ones,
  so position-dependent: computed once here with its operations into glowflow's learned prior.
* With ``--no_lu`` its last block still builds ``InvConv2dLU`` (``Block(..., split=False)``
  drops ``conv_lu``); those LU factors become plain weights ``W = P L U`` (float64 product).

The state dict does not record the image size: give it (``--image-size``, default 64 as in its
``train.py``). Inputs are glowflow's ``x = floor(k / 2^(8 - n_bits)) / 2^n_bits - 1/2 + U``.
"""

from __future__ import annotations

import itertools
import math
import re
from pathlib import Path
from typing import Optional

import torch
from torch import Tensor

from ..config import GlowConfig
from ..errors import ConfigError, ModelFileError
from ..store.data import DataSpec
from .common import (
    Converted,
    TensorMap,
    exit_network,
    layer,
    read_torch_file,
    strip_prefix,
    zero_conv_of_constant,
)

GAIN = 3.0
"""``ZeroConv2d``'s ``exp(scale * 3)``."""


def _lu_weight(m: TensorMap, source: str) -> Tensor:
    """``W = P (L * mask + I) (U * mask^T + diag(sign * exp(s)))`` of an ``InvConv2dLU``."""
    p, lower, upper = (m.take(f"{source}.{k}").double() for k in ("w_p", "w_l", "w_u"))
    log_s, sign = m.take(f"{source}.w_s").double(), m.take(f"{source}.s_sign").double()
    upper_mask = m.take(f"{source}.u_mask").double()
    lower_mask, eye = m.take(f"{source}.l_mask").double(), m.take(f"{source}.l_eye").double()
    with m.fitting(f"the 1x1 weight P L U of {source}"):
        weight = (
            p @ (lower * lower_mask + eye) @ (upper * upper_mask + torch.diag(sign * log_s.exp()))
        )
    return weight.to(m.source[f"{source}.w_l"].dtype)


def _check_masks(m: TensorMap, invconv: str) -> None:
    """``InvConv2dLU``'s constant masks, which its forward pass multiplies in and glowflow's LU
    convolution builds itself: they must be the strict upper and lower triangles and the
    identity."""
    channels = m.shape(f"{invconv}.w_l", 2)[0]
    upper = torch.ones(channels, channels).triu(1)
    for name, expected in (("u_mask", upper), ("l_mask", upper.T), ("l_eye", torch.eye(channels))):
        value = m.take(f"{invconv}.{name}")
        if value.shape != expected.shape or not torch.equal(value.to(expected.dtype), expected):
            raise ModelFileError(
                f"{m.path}: tensor '{invconv}.{name}' is not InvConv2dLU's constant mask "
                f"({tuple(value.shape)}, not the {tuple(expected.shape)} it builds)"
            )


def _map_flow(m: TensorMap, source: str, level: int, step: int, permutation: str) -> None:
    actnorm, mixing, coupling = (layer(level, step, i) for i in range(3))
    m.put(f"{actnorm}.bias", m.take(f"{source}.actnorm.loc").reshape(-1))
    scale = m.take(f"{source}.actnorm.scale").reshape(-1)
    if not bool((scale > 0).all()):
        raise ModelFileError(
            f"{m.path}: {source}.actnorm.scale has non-positive entries; "
            f"glowflow's ActNorm keeps log(scale)"
        )
    m.put(f"{actnorm}.log_scale", scale.log())
    m.take(f"{source}.actnorm.initialized")
    invconv = f"{source}.invconv"
    if permutation == "invconv_lu":
        for ours, theirs in (
            ("permutation", "w_p"),
            ("sign_s", "s_sign"),
            ("log_s", "w_s"),
            ("lower", "w_l"),
            ("upper", "w_u"),
        ):
            m.put(f"{mixing}.{ours}", m.take(f"{invconv}.{theirs}"))
        _check_masks(m, invconv)
    elif m.has(f"{invconv}.w_p"):  # the last block's LU under --no_lu
        m.put(f"{mixing}.weight", _lu_weight(m, invconv))
    else:
        m.put(
            f"{mixing}.weight",
            m.take(f"{invconv}.weight").reshape(m.source[f"{invconv}.weight"].shape[:2]),
        )
    net = f"{source}.coupling.net"
    for index in (0, 2):
        m.put(f"{coupling}.network.{index}.weight", m.take(f"{net}.{index}.weight"))
        m.put(f"{coupling}.network.{index}.bias", m.take(f"{net}.{index}.bias"))
    m.put(f"{coupling}.network.4.conv.weight", m.take(f"{net}.4.conv.weight"))
    m.put(f"{coupling}.network.4.conv.bias", m.take(f"{net}.4.conv.bias"))
    m.put(f"{coupling}.network.4.log_gain", m.take(f"{net}.4.scale").reshape(-1, 1, 1))


def convert_rosinality(
    path: Path, image_size: int = 64, n_bits: int = 5, dataset: Optional[str] = None
) -> Converted:
    """Convert a rosinality/glow-pytorch ``model_*.pt`` into a glowflow model."""
    state = strip_prefix(read_torch_file(path), "module.", path)
    m = TensorMap(state, path)
    flows = sorted(
        {
            (int(g.group(1)), int(g.group(2)))
            for k in state
            if (g := re.match(r"blocks\.(\d+)\.flows\.(\d+)\.actnorm\.loc$", k))
        }
    )
    if not flows:
        raise ModelFileError(
            f"{path} has no blocks.*.flows.*.actnorm.loc tensors: not a "
            f"rosinality/glow-pytorch checkpoint"
        )
    levels = max(b for b, _ in flows) + 1
    steps = max(f for _, f in flows) + 1
    if len(flows) != levels * steps:
        block, flow = min(set(itertools.product(range(levels), range(steps))) - set(flows))
        raise ModelFileError(
            f"{path} lacks tensor 'blocks.{block}.flows.{flow}.actnorm.loc': blocks hold "
            f"different numbers of flows"
        )
    channels = math.prod(m.shape("blocks.0.flows.0.actnorm.loc")) // 4
    lu = m.has("blocks.0.flows.0.invconv.w_p")
    net_out = m.shape("blocks.0.flows.0.coupling.net.4.conv.weight", 4)[0]
    hidden = m.shape("blocks.0.flows.0.coupling.net.0.weight", 4)[0]
    factor = 2**levels
    if image_size % factor:
        raise ConfigError(f"--image-size {image_size} is not divisible by 2**{levels}")
    glow = GlowConfig(
        output_shape=(channels, image_size, image_size),
        num_glow_blocks=levels,
        num_steps_per_block=steps,
        hidden_channels=hidden,
        coupling="affine" if net_out == 4 * channels else "additive",
        permutation="invconv_lu" if lu else "invconv",
        scale_fn="sigmoid",
        coupling_output="scale_shift",
        coupling_shift="before_scale",
        exit_prior="gaussian",
        exit_output="shift_scale",
        zero_conv_padding="ones",
        learn_top_prior=True,
    )
    for block, flow in flows:
        _map_flow(m, f"blocks.{block}.flows.{flow}", block, flow, glow.permutation)
    for block in range(levels - 1):
        prior = f"blocks.{block}.prior"
        m.put(f"{exit_network(block)}.conv.weight", m.take(f"{prior}.conv.weight"))
        m.put(f"{exit_network(block)}.conv.bias", m.take(f"{prior}.conv.bias"))
        m.put(f"{exit_network(block)}.log_gain", m.take(f"{prior}.scale").reshape(-1, 1, 1))
    top = glow.latent_shapes()[-1]
    prior = f"blocks.{levels - 1}.prior"
    with m.fitting("the top prior"):
        h = zero_conv_of_constant(
            m.take(f"{prior}.conv.weight"),
            m.take(f"{prior}.conv.bias"),
            m.take(f"{prior}.scale"),
            GAIN,
            top,
            1.0,
        )
    m.put("bijector.top_prior.mean", h[: top[0]].contiguous())
    m.put("bijector.top_prior.log_sigma", h[top[0] :].contiguous())
    tensors = m.finish(glow)
    notes = [
        "converted from rosinality/glow-pytorch's layout; its top prior (a conv of "
        "zeros padded with ones) is stored as its constant output",
        "its train.py resizes the short side then centre-crops; glowflow's image_size "
        "centre-crops then resizes",
    ]
    if not lu:
        notes.append(
            "trained with --no_lu: the last block's LU factors are stored as the plain "
            "1x1 weight P L U (a float64 product, rounded to the checkpoint's precision)"
        )
    data = DataSpec(
        dataset or "unknown (rosinality trains on an image folder, CelebA in its README)",
        glow.output_shape,
        2**n_bits,
        image_size=image_size,
        n_bits=n_bits,
    )
    return Converted(
        glow, tensors, data, {"kind": "rosinality", "converted_from": str(path), "notes": notes}
    )
