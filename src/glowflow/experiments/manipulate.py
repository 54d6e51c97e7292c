"""Semantic manipulation (the Glow paper's Section 7): move an image's latent along the
difference of the mean latents of images with and without an attribute."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Optional, Sequence

import torch
from torch import Tensor

from ..errors import ConfigError, MissingFileError, ModelFileError
from ..flow import Flow
from .common import Latents, condition, encode_all

DEFAULT_STRENGTHS = (-1.0, -0.5, 0.0, 0.5, 1.0, 1.5)


def select_groups(
    labels: Tensor,
    attribute: str,
    negative: Optional[str] = None,
    attribute_names: Optional[Sequence[str]] = None,
) -> tuple[Tensor, Tensor]:
    """Boolean masks ``(positive, negative)`` over a dataset's labels.

    * Attribute vectors ``(N, A)`` of 0/1 (CelebA): ``attribute`` is one of
      ``attribute_names``; positive = images with it, negative = images without it.
    * Class labels ``(N,)`` (digits, MNIST): ``attribute`` is a class index; positive = that
      class, negative = class ``negative`` if given, else every other class.

    Raises :class:`~glowflow.errors.ConfigError` for an unknown attribute/class or an empty
    group.
    """
    if labels.dim() == 2:
        if negative is not None:
            raise ConfigError("--negative applies to class labels; attributes use their absence")
        names = list(attribute_names or [])
        if attribute not in names:
            raise ConfigError(f"unknown attribute {attribute!r}; choose one of {names}")
        positive = labels[:, names.index(attribute)] > 0
        negative_mask = ~positive
    else:
        positive = labels == _class_index(attribute)
        negative_mask = ~positive if negative is None else labels == _class_index(negative)
        if negative is not None and _class_index(negative) == _class_index(attribute):
            raise ConfigError(f"--negative must differ from the attribute class {attribute}")
    for name, mask in (("positive", positive), ("negative", negative_mask)):
        if not bool(mask.any()):
            raise ConfigError(f"the {name} group for attribute {attribute!r} is empty")
    return positive, negative_mask


def _class_index(name: str) -> int:
    try:
        return int(name)
    except ValueError:
        raise ConfigError(f"class labels are integers, got {name!r}") from None


def mean_latents(
    flow: Flow, x: Tensor, y: Optional[Tensor] = None, batch_size: int = 256
) -> Latents:
    """Mean over the batch of each level's exact latent: a list of ``(C_i, H_i, W_i)``."""
    if x.shape[0] == 0:
        raise ConfigError("mean_latents needs at least one image")
    return [level.mean(dim=0) for level in encode_all(flow, x, y, batch_size)]


def attribute_direction(
    flow: Flow,
    x_positive: Tensor,
    x_negative: Tensor,
    y_positive: Optional[Tensor] = None,
    y_negative: Optional[Tensor] = None,
    batch_size: int = 256,
) -> Latents:
    """``z_pos - z_neg`` per level: mean latent with the attribute minus mean without it.

    Labels are needed only by a class-conditional model (each image is encoded with its own).
    """
    positive = mean_latents(flow, x_positive, y_positive, batch_size)
    negative = mean_latents(flow, x_negative, y_negative, batch_size)
    return [p - n for p, n in zip(positive, negative)]


@torch.no_grad()
def manipulate(
    flow: Flow,
    x: Tensor,
    direction: Sequence[Tensor],
    strengths: Sequence[float] = DEFAULT_STRENGTHS,
    y: Optional[Tensor] = None,
) -> Tensor:
    """Decode ``encode(x) + s * direction`` for every image and strength.

    Args:
        flow: the model.
        x: images ``(B, C, H, W)``.
        direction: per-level ``(C_i, H_i, W_i)``, e.g. from :func:`attribute_direction`.
        strengths: the multipliers ``s``; ``0`` reproduces the image.
        y: labels ``(B,)`` for a class-conditional model (kept fixed while moving).

    Returns:
        ``(B, S, C, H, W)``: row ``b`` moves image ``b`` through the ``S`` strengths.
    """
    check_direction(flow, direction)
    context = condition(flow, y)
    s = torch.as_tensor(list(strengths), dtype=x.dtype, device=x.device)
    moved = [
        (z.unsqueeze(1) + s.reshape(1, -1, *[1] * d.dim()) * d.to(z)).flatten(0, 1)
        for z, d in zip(flow.encode(x, context), direction)
    ]
    if context is not None:
        context = context.repeat_interleave(len(s), dim=0)
    return flow.decode(moved, context).unflatten(0, (x.shape[0], len(s)))


def check_direction(flow: Flow, direction: Sequence[Tensor], path: Optional[Path] = None) -> None:
    """Check that ``direction`` has one tensor per latent level of ``flow``, of its shape:
    :class:`~glowflow.errors.ConfigError` if not, or for a direction read from file ``path``,
    :class:`~glowflow.errors.ModelFileError` naming the file."""
    shapes = [tuple(d.shape) for d in direction]
    expected = [tuple(shape) for shape in flow.latent_shapes]
    if shapes != expected:
        source = "direction" if path is None else f"direction file {path}"
        error = ConfigError if path is None else ModelFileError
        raise error(f"{source} has level shapes {shapes}; this model's are {expected}")


def save_direction(direction: Sequence[Tensor], path: Path, metadata: dict[str, str]) -> None:
    """Write a direction: safetensors for ``*.safetensors`` (``level_<i>`` tensors plus string
    metadata), else ``torch.save`` of ``{"levels": [...], "metadata": {...}}``."""
    path = Path(path)
    levels = [d.detach().cpu().contiguous() for d in direction]
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({f"level_{i}": d for i, d in enumerate(levels)}, str(path), metadata=metadata)
    else:
        torch.save({"levels": levels, "metadata": dict(metadata)}, path)


def load_direction(path: Path) -> tuple[Latents, dict[str, str]]:
    """Read a file written by :func:`save_direction`: ``(per-level tensors, metadata)``.

    Raises :class:`~glowflow.errors.MissingFileError` for a missing file and
    :class:`~glowflow.errors.ModelFileError` for one that is unreadable or not a direction.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"no direction file at {path}")
    not_a_direction = f"{path} is not a direction file written by glowflow"
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt") as handle:
                keys = set(handle.keys())
                names = [f"level_{i}" for i in range(len(keys))]
                if set(names) != keys:
                    raise ModelFileError(f"{not_a_direction}: tensors {sorted(keys)}")
                return [handle.get_tensor(n) for n in names], dict(handle.metadata() or {})
        except SafetensorError as error:
            raise ModelFileError(f"{not_a_direction}: {error}") from None
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as error:
        raise ModelFileError(f"{not_a_direction}: {error}") from None
    if not isinstance(saved, dict) or "levels" not in saved:
        raise ModelFileError(not_a_direction)
    return list(saved["levels"]), dict(saved.get("metadata", {}))
