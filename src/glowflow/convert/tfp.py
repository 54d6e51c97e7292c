"""Converter for TensorFlow Probability's ``tfb.Glow`` with its default networks.

Input: an ``.npz`` of the Glow's variables by structural name
(:func:`glowflow.convert.tfp_variables.glow_variables` writes it from a live ``tfb.Glow``), or
a ``tf.train.Checkpoint(glow=...)`` prefix plus ``--hparams`` (the ``tfb.Glow`` arguments and
``num_hidden``), read with the ``tfp`` extra. The converted tensors keep the source's
floating dtype (a Glow built under ``set_floatx("float64")`` converts to a float64 model).

The map, read from ``tensorflow_probability/python/bijectors/glow.py``. TFP's ``forward``
samples, so glowflow's normalizing pass is TFP's chain walked from the image side; walked that
way, blocks come finest first and steps in the order they act (the reverse of TFP's
construction order) and each step is:

* ``ActivationNormalization``: ``Invert(Chain([Scale(exp(log_s)), Shift(m)]))`` towards the
  image, so ``(x + m) * exp(log_s)`` towards the latent: glowflow's ActNorm;
* ``Invert(OneByOneConv)``: ``y = W x`` with ``W = lu_reconstruct(lower_upper, permutation)
  = P L U`` (rows of ``L U`` taken in the inverse permutation): glowflow's LU 1x1 conv;
* ``Invert(RealNVP(C / 2))``: the first half conditions, the second half becomes
  ``x * sigmoid(h[:c] + 2) + h[c:]``, scale first (``scale_fn="sigmoid"``,
  ``coupling_output="scale_shift"``); the network ends in a plain conv (gain ``exp(0)``);
* exits: ``Invert(ExitBijector)``, a ``RealNVP`` on ``[continuing | exiting]`` with
  ``exp(h[:c] + 2)`` and shift ``h[c:]``: glowflow's affine exit with
  ``exit_output="scale_shift"`` and the 2 added to the scale half of the conv's bias.

TFP's rank-1 latent orders the same numbers as :mod:`glowflow.convert.tfp_order` describes.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..config import GlowConfig
from ..errors import ConfigError, MissingExtraError, MissingFileError, ModelFileError
from ..store.data import DataSpec
from .common import Converted, TensorMap, check_nonempty_file, exit_network, layer
from .ports import read_hparams


def _npz_arrays(path: Path) -> dict[str, np.ndarray]:
    """The numeric arrays of an ``.npz`` read without unpickling (``allow_pickle=False``);
    errors are one line naming the file and the cause, never numpy's advice to allow pickles."""
    check_nonempty_file(path, "variables file", kind="an .npz file")
    try:
        with np.load(path, allow_pickle=False) as arrays:
            loaded = {key: arrays[key] for key in arrays.files}
    except ValueError as error:  # numpy's refusal of pickled (object) data
        if "pickle" not in str(error):
            raise ModelFileError(f"{path} is not a readable .npz of arrays: {error}") from None
        raise ModelFileError(
            f"{path} is not an .npz of arrays: it holds pickled objects, which are never loaded"
        ) from None
    except (OSError, EOFError, zipfile.BadZipFile) as error:
        raise ModelFileError(
            f"{path} is not a readable .npz of arrays: {type(error).__name__}: {error}"
        ) from None
    if not isinstance(loaded, dict):  # np.load reads a lone .npy as one array
        raise ModelFileError(f"{path} holds one array, not an .npz of named variables")
    for key, array in loaded.items():
        if not isinstance(array, np.ndarray):  # a zip member that is no .npy
            raise ModelFileError(f"{path}: entry {key!r} is not a numpy array")
        if array.dtype.kind not in "biuf":
            raise ModelFileError(f"{path}: entry {key!r} is {array.dtype} data, not numbers")
    return loaded


def _arrays(path: Path, hparams: Optional[Path]) -> dict[str, np.ndarray]:
    if path.suffix == ".npz":
        return _npz_arrays(path)
    if path.is_dir():
        raise ModelFileError(
            f"{path} is a directory: give a tf.train.Checkpoint's prefix (as ckpt/glow-1) "
            f"or an .npz of its variables"
        )
    index = path.with_name(path.name + ".index")
    if not index.is_file():
        raise MissingFileError(
            f"{path} is not a tf.train.Checkpoint prefix ({index.name} does not exist) "
            f"nor an .npz of its variables"
        )
    if hparams is None:
        raise ConfigError(
            f"{path}: a tf.train.Checkpoint does not record the Glow's arguments; "
            f"give them with --hparams (a JSON of tfb.Glow's arguments)"
        )
    arguments = read_hparams(hparams)
    try:
        from .tfp_variables import checkpoint_variables

        return checkpoint_variables(str(path), arguments)
    except ModuleNotFoundError as error:
        raise MissingExtraError(
            f"reading the TensorFlow checkpoint {path} needs the tfp "
            f"extra (pip install 'glowflow[tfp]'): {error}"
        ) from None


def _lu(m: TensorMap, prefix: str, target: str) -> None:
    lower_upper = m.take(f"{prefix}/lower_upper")
    permutation = m.take(f"{prefix}/permutation").long()
    with m.fitting(f"the 1x1 convolution {prefix}"):
        rows = torch.argsort(permutation)  # W = (L U)[rows]: row i of W is row rows[i] of L U
        matrix = torch.zeros_like(lower_upper)
        matrix[torch.arange(len(rows)), rows] = 1.0
        diagonal = torch.diagonal(lower_upper)
    m.put(f"{target}.permutation", matrix)
    m.put(f"{target}.lower", torch.tril(lower_upper, -1))
    m.put(f"{target}.upper", torch.triu(lower_upper, 1))
    m.put(f"{target}.sign_s", torch.sign(diagonal))
    m.put(f"{target}.log_s", diagonal.abs().log())


def _conv(m: TensorMap, prefix: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A Keras conv's HWIO kernel as torch's OIHW weight, and its bias."""
    m.shape(f"{prefix}/kernel", 4)
    return m.take(f"{prefix}/kernel").permute(3, 2, 0, 1).contiguous(), m.take(f"{prefix}/bias")


def _unit_gain(bias: torch.Tensor) -> torch.Tensor:
    """``log_gain`` of a plain conv with bias ``bias`` ``(C,)``: zeros ``(C, 1, 1)`` (gain
    ``exp(0)``) in the source's dtype."""
    return torch.zeros(bias.numel(), 1, 1, dtype=bias.dtype)


def convert_tfp(
    path: Path, hparams: Optional[Path] = None, dataset: Optional[str] = None, n_bits: int = 8
) -> Converted:
    """Convert a ``tfb.Glow``'s variables (``.npz``, or a checkpoint with ``hparams``)."""
    arrays = _arrays(path, hparams)
    m = TensorMap({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}, path)
    if not m.has("output_shape") or not m.has("level0/step0/actnorm/loc"):
        raise ModelFileError(
            f"{path} lacks output_shape or level0/step0/actnorm/loc: not the "
            f"variables of a tfb.Glow (see glowflow.convert.tfp_variables)"
        )
    if m.shape("output_shape") != (3,):
        raise ModelFileError(f"{path}: output_shape is not (height, width, channels)")
    height, width, channels = (int(s) for s in m.take("output_shape"))
    levels = sum(1 for k in arrays if k.endswith("/step0/actnorm/loc"))
    steps = sum(1 for k in arrays if k.startswith("level0/") and k.endswith("/actnorm/loc"))
    hidden = m.shape("level0/step0/coupling/conv0/kernel", 4)[3]
    level_channels = m.shape("level0/step0/actnorm/loc", 1)[0]
    coupling = (
        "affine"
        if m.shape("level0/step0/coupling/conv2/kernel", 4)[3] == level_channels
        else "additive"
    )
    fractions = []
    for level in range(levels):
        total = m.shape(f"level{level}/step0/actnorm/loc", 1)[0]
        exit_kernel = f"level{level}/exit/kernel"
        fractions.append(m.shape(exit_kernel, 4)[3] / 2 / total if m.has(exit_kernel) else 0.0)
    glow = GlowConfig(
        output_shape=(channels, height, width),
        num_glow_blocks=levels,
        num_steps_per_block=steps,
        grab_after_block=tuple(fractions),
        hidden_channels=hidden,
        coupling=coupling,
        permutation="invconv_lu",
        scale_fn="sigmoid",
        coupling_output="scale_shift",
        exit_output="scale_shift",
    )
    for level in range(levels):
        for step in range(steps):
            source = f"level{level}/step{step}"
            actnorm, mixing, coupling_layer = (layer(level, step, i) for i in range(3))
            m.put(f"{actnorm}.bias", m.take(f"{source}/actnorm/loc"))
            m.put(f"{actnorm}.log_scale", m.take(f"{source}/actnorm/log_scale"))
            _lu(m, f"{source}/conv1x1", mixing)
            for index, ours in enumerate(("0", "2", "4.conv")):
                weight, bias = _conv(m, f"{source}/coupling/conv{index}")
                m.put(f"{coupling_layer}.network.{ours}.weight", weight)
                m.put(f"{coupling_layer}.network.{ours}.bias", bias)
            m.put(
                f"{coupling_layer}.network.4.log_gain",
                _unit_gain(m.target[f"{coupling_layer}.network.4.conv.bias"]),
            )
        if m.has(f"level{level}/exit/kernel"):
            weight, bias = _conv(m, f"level{level}/exit")
            half = bias.numel() // 2
            bias = torch.cat([bias[:half] + 2.0, bias[half:]])  # exp(h + 2): the 2 in the bias
            m.put(f"{exit_network(level)}.conv.weight", weight)
            m.put(f"{exit_network(level)}.conv.bias", bias)
            m.put(f"{exit_network(level)}.log_gain", _unit_gain(bias))
    tensors = m.finish(glow)
    notes = [
        "converted from a tfb.Glow with TFP's default networks; the exits' exp(h + 2) "
        "keeps its 2 in the exit conv's bias",
        "inputs: the x the tfb.Glow was trained on, taken here as glowflow's "
        "(k + u) / n_bins - 1/2",
    ]
    data = DataSpec(
        dataset or "unknown", glow.output_shape, 2**n_bits, n_bits=None if n_bits == 8 else n_bits
    )
    return Converted(
        glow, tensors, data, {"kind": "tfp", "converted_from": str(path), "notes": notes}
    )
