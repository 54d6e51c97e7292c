"""apple/ml-tarflow's checkpoints as glowflow :class:`~glowflow.models.tarflow.TarFlowModel` s.

ml-tarflow's ``train.py`` saves ``Model.state_dict()`` with ``torch.save`` (its public AFHQ-256
checkpoint ``afhq_model_8_768_8_8_0.07.pth``: 8 blocks of 8 layers, width 768, 8x8 patches, 3
classes). Its tensors, for block ``i`` and layer ``j`` (``W`` the width, ``T`` tokens, ``D``
entries per token, ``K`` classes):

* ``blocks.i.proj_in.{weight (W, D), bias}``, ``blocks.i.pos_embed (T, W)``,
  ``blocks.i.class_embed (K, 1, W)`` (class-conditional models only);
* ``blocks.i.attn_blocks.j.attention.{norm, qkv (3W, W), proj (W, W)}`` and
  ``blocks.i.attn_blocks.j.mlp.{norm, main.0 (4W, W), main.2 (W, 4W)}``;
* ``blocks.i.proj_out.{weight (2D, W), bias}`` (``D`` rows only in its volume-preserving
  mode, which this converter does not read), ``blocks.i.attn_mask`` (the ``(T, T)`` causal
  mask), and ``var (T, D)``, its prior variance (all ones in the non-volume-preserving mode).

Every tensor maps one to one (``class_embed`` drops its middle axis, ``main.0``/``main.2`` are
``mlp.up``/``mlp.down``); block ``i`` reads the tokens reversed for odd ``i``, as ml-tarflow
alternates. The map is strict: a missing, unknown, wrongly shaped or non-finite tensor is a
:class:`~glowflow.errors.ModelFileError` naming the file and the key. Hyper-parameters come
from the shapes, except those shapes cannot tell: the image channels (``in_channels``, 3) and
the attention head size (``head_dim``; ml-tarflow's ``Model`` always uses 64).

ml-tarflow's data are in ``[-1, 1]``; with ``data="glowflow"`` (default) the model starts with
``x -> 2x`` and reads glowflow's ``[-0.5, 0.5)``: ``log p(x) = log p_tarflow(2x) + D log 2``,
and its samples are ml-tarflow's halved. ``data="tarflow"`` keeps ml-tarflow's range.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import torch
from torch import Tensor

from ..errors import ConfigError, ModelFileError
from ..models.tarflow import TarFlowModel, tarflow
from .common import read_torch_file, strip_prefix

DATA_RANGES = {"glowflow": 2.0, "tarflow": 1.0}
"""The data range a converted model reads, and the input scale that maps it onto
ml-tarflow's ``[-1, 1]``."""

_LAYER_NAMES = {
    "attention.norm": "attention.norm",
    "attention.qkv": "attention.qkv",
    "attention.proj": "attention.proj",
    "mlp.norm": "mlp.norm",
    "mlp.main.0": "mlp.up",
    "mlp.main.2": "mlp.down",
}
"""ml-tarflow's module names inside ``attn_blocks.j`` and glowflow's inside
``transformer.layers.j``; each has a ``weight`` and a ``bias``."""


@dataclass
class ConvertedTarFlow:
    """A converted ml-tarflow checkpoint: the model (eval mode) and the :func:`tarflow`
    keywords that rebuild its architecture (``event_shape`` and the rest)."""

    model: TarFlowModel
    settings: dict[str, Any]

    def save(self, out: Path, command: Optional[str] = None, name: Optional[str] = None) -> Path:
        """Write the model folder ``out`` (family ``tarflow``; 8-bit data of unknown name)."""
        from ..families.tarflow import TarFlowConfig
        from ..store.data import DataSpec
        from ..store.writer import save_model

        layers = self.settings["layers_per_block"]
        values = {
            **self.settings,
            "layers_per_block": layers if isinstance(layers, list) else [layers],
        }
        self.model.config = TarFlowConfig(**values)
        provenance = {"kind": "converted", "converted_from": "apple/ml-tarflow Model state dict"}
        if command:
            provenance["convert_command"] = command
        data = DataSpec("unknown", self.settings["event_shape"], 256, self.settings["num_classes"])
        return save_model(self.model, out, data, None, provenance, None, name)


def read_tarflow_state(path: Path) -> dict[str, Tensor]:
    """The tensors of an ml-tarflow checkpoint, read with ``torch.load(weights_only=True)``
    (tensors, numbers, strings and containers only, never code; a ``module.`` prefix of
    ``DistributedDataParallel`` dropped); errors name the file."""
    path = Path(path)
    state = read_torch_file(path, "ml-tarflow checkpoint")
    for key, value in state.items():
        if not isinstance(value, Tensor):
            raise ModelFileError(f"{path}: entry {key!r} is a {type(value).__name__}, not a tensor")
    return strip_prefix(state, "module.", path)


def _shape(state: dict[str, Tensor], key: str, path: Path) -> tuple[int, ...]:
    if key not in state:
        raise ModelFileError(f"{path} lacks tensor {key!r}: not an ml-tarflow Model checkpoint")
    return tuple(state[key].shape)


def tarflow_settings(
    state: dict[str, Tensor], path: Path, in_channels: int = 3, head_dim: int = 64
) -> dict[str, Any]:
    """The :func:`tarflow` keywords of an ml-tarflow state dict, from its tensors' shapes."""
    blocks = sorted(
        {int(m.group(1)) for k in state if (m := re.match(r"blocks\.(\d+)\.proj_in\.weight$", k))}
    )
    if not blocks or blocks != list(range(len(blocks))):
        raise ModelFileError(
            f"{path}: no blocks.0 .. blocks.N proj_in tensors: not an ml-tarflow Model checkpoint"
        )
    proj_in = _shape(state, "blocks.0.proj_in.weight", path)
    if len(proj_in) != 2:
        raise ModelFileError(
            f"{path}: tensor 'blocks.0.proj_in.weight' has shape {proj_in}, not (width, entries "
            f"per token)"
        )
    width, token_dim = proj_in
    num_tokens = _shape(state, "blocks.0.pos_embed", path)[0]
    layers = []
    for block in blocks:
        pattern = re.compile(rf"blocks\.{block}\.attn_blocks\.(\d+)\.")
        count = 1 + max((int(m.group(1)) for k in state if (m := pattern.match(k))), default=-1)
        if count == 0:  # a missing tensor of a layer that has others is named by the map
            raise ModelFileError(f"{path}: block {block} has no attention layers")
        layers.append(count)
    out_rows = _shape(state, "blocks.0.proj_out.weight", path)[0]
    if out_rows != 2 * token_dim:
        raise ModelFileError(
            f"{path}: blocks.0.proj_out.weight has {out_rows} rows, not 2 x {token_dim}: a "
            f"volume-preserving (nvp=False) TarFlow, which glowflow does not read"
        )
    patch_area, remainder = divmod(token_dim, in_channels)
    patch_size = math.isqrt(patch_area)
    side = math.isqrt(num_tokens)
    if remainder or patch_size**2 != patch_area or side**2 != num_tokens:
        raise ModelFileError(
            f"{path}: tokens of {token_dim} entries x {num_tokens} are not square patches of a "
            f"square {in_channels}-channel image (is in_channels right?)"
        )
    if head_dim < 1 or width % head_dim:
        raise ConfigError(f"{path}: width {width} is not a multiple of head_dim {head_dim}")
    classes = (
        _shape(state, "blocks.0.class_embed", path)[0] if "blocks.0.class_embed" in state else None
    )
    return dict(
        event_shape=(in_channels, side * patch_size, side * patch_size),
        patch_size=patch_size,
        channels=width,
        num_blocks=len(blocks),
        layers_per_block=layers[0] if len(set(layers)) == 1 else layers,
        num_classes=classes,
        head_dim=head_dim,
    )


def _source_tensors(block: int, layers: int, conditional: bool) -> dict[str, str]:
    """glowflow's key (inside a block) for each of ml-tarflow's keys of block ``block``."""
    prefix = f"blocks.{block}."
    names = {f"{prefix}pos_embed": "pos_embed"}
    if conditional:
        names[f"{prefix}class_embed"] = "class_embed"
    for module in ("proj_in", "proj_out"):
        for leaf in ("weight", "bias"):
            names[f"{prefix}{module}.{leaf}"] = f"{module}.{leaf}"
    for layer in range(layers):
        for source, target in _LAYER_NAMES.items():
            for leaf in ("weight", "bias"):
                names[f"{prefix}attn_blocks.{layer}.{source}.{leaf}"] = (
                    f"transformer.layers.{layer}.{target}.{leaf}"
                )
    return names


def convert_tarflow(
    path: Union[str, Path],
    *,
    in_channels: int = 3,
    head_dim: int = 64,
    data: str = "glowflow",
) -> ConvertedTarFlow:
    """Read ml-tarflow checkpoint ``path`` into a :class:`TarFlowModel` (float32, eval mode).

    Args:
        in_channels: the images' channels (the checkpoint does not record them).
        head_dim: channels per attention head (ml-tarflow's ``Model``: 64).
        data: ``"glowflow"`` (inputs in ``[-0.5, 0.5)``) or ``"tarflow"`` (``[-1, 1]``).
    """
    path = Path(path)
    if data not in DATA_RANGES:
        raise ConfigError(f"data must be one of {tuple(DATA_RANGES)}, got {data!r}")
    state = read_tarflow_state(path)
    settings = {
        **tarflow_settings(state, path, in_channels, head_dim),
        "input_scale": DATA_RANGES[data],
    }
    model = tarflow(**settings)
    layers = settings["layers_per_block"]
    counts = layers if isinstance(layers, list) else [layers] * settings["num_blocks"]
    target = model.state_dict()
    offset = len(model.bijector.bijectors) - settings["num_blocks"]
    mapped: dict[str, Tensor] = {}
    used: set[str] = set()
    for block, count in enumerate(counts):
        for source, name in _source_tensors(
            block, count, settings["num_classes"] is not None
        ).items():
            key = f"bijector.bijectors.{offset + block}.{name}"
            if source not in state:
                raise ModelFileError(f"{path} lacks tensor {source!r} (for glowflow's {key})")
            value = state[source]
            if name == "class_embed" and value.dim() == 3 and value.shape[1] == 1:
                value = value[:, 0]  # ml-tarflow's (K, 1, W)
            if tuple(value.shape) != tuple(target[key].shape):
                raise ModelFileError(
                    f"{path}: tensor {source!r} has shape {tuple(value.shape)}, glowflow's {key} "
                    f"needs {tuple(target[key].shape)} (blocks of different shapes?)"
                )
            if not value.is_floating_point() or not bool(torch.isfinite(value).all()):
                raise ModelFileError(
                    f"{path}: tensor {source!r} has non-finite or non-float values"
                )
            mapped[key] = value.detach().to(target[key].dtype)
            used.add(source)
        used.add(_checked_mask(state, block, path))
    used.add(_checked_prior(state, path))
    unknown = sorted(set(state) - used)
    if unknown:
        more = " ..." if len(unknown) > 8 else ""
        raise ModelFileError(f"{path} has tensors ml-tarflow's Model does not: {unknown[:8]}{more}")
    missing = sorted(set(target) - set(mapped))
    if missing:  # every parameter is mapped above: a glowflow change the converter lacks
        raise AssertionError(f"converter bug: glowflow tensors {missing[:5]} not mapped")
    model.load_state_dict(mapped)
    return ConvertedTarFlow(model.eval(), settings)


def _checked_mask(state: dict[str, Tensor], block: int, path: Path) -> str:
    """Block ``block``'s ``attn_mask``: ml-tarflow's causal mask, which glowflow builds itself."""
    key = f"blocks.{block}.attn_mask"
    tokens = _shape(state, f"blocks.{block}.pos_embed", path)[0]
    if _shape(state, key, path) != (tokens, tokens) or not torch.equal(
        state[key].float(), torch.ones(tokens, tokens).tril()
    ):
        raise ModelFileError(f"{path}: {key!r} is not the causal mask of {tokens} tokens")
    return key


def _checked_prior(state: dict[str, Tensor], path: Path) -> str:
    """``var``, ml-tarflow's prior variance: all ones (a standard normal base) when it is not
    volume preserving."""
    shape = _shape(state, "var", path)
    if not torch.equal(state["var"].float(), torch.ones(shape)):
        raise ModelFileError(
            f"{path}: tensor 'var' (the prior variance) is not all ones: glowflow's base is N(0, I)"
        )
    return "var"
