"""What every converter shares: reading a foreign checkpoint without unpickling code, a strict
tensor map onto a glowflow model, and the result written as a pretrained folder.

Names of glowflow's tensors (``Flow(Glow(config)).state_dict()``), for level ``l`` and step
``k``: ``{step}.bijectors.0`` is the ActNorm (``bias``, ``log_scale``, ``initialized``),
``.1`` the 1x1 convolution (``weight``, or ``lower``, ``upper``, ``log_s``, ``permutation``,
``sign_s``) and ``.2`` the coupling (``network.*``); ``{level}.exit.coupling.network.*`` is the
split prior's network and ``bijector.top_prior.*`` the learned top prior.
"""

from __future__ import annotations

import math
import pickle
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from ..config import GlowConfig
from ..errors import MissingFileError, ModelFileError
from ..flow import Flow
from ..glow import Glow
from ..store.data import DataSpec
from ..store.writer import save_model


def _unreadable_because(error: Exception) -> str:
    """One line on why ``torch.load(weights_only=True)`` refused a file, never torch's advice
    to load it with ``weights_only=False`` (the one thing not to do with an untrusted file)."""
    text = str(error).strip()
    if isinstance(error, pickle.UnpicklingError) or "weights_only" in text.lower():
        return (
            "it holds objects other than tensors (pickled code or classes), which are never loaded"
        )
    first = text.splitlines()[0] if text else ""
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


def check_nonempty_file(path: Path, what: str, kind: str = "a file") -> Path:
    """``path`` if it is a file with content; else a one-line error naming ``what`` it should
    be: a directory (not ``kind``), missing, or empty."""
    if path.is_dir():
        raise ModelFileError(f"{what} {path} is a directory, not {kind}")
    if not path.is_file():
        raise MissingFileError(f"{what} {path} does not exist")
    if path.stat().st_size == 0:
        raise ModelFileError(f"{what} {path} is empty")
    return path


def read_torch_file(path: Path, what: str = "checkpoint") -> dict[str, Any]:
    """A ``torch.save``d dict read with the restricted unpickler (``weights_only=True``: tensors,
    numbers, strings and containers only, never code). Errors are one line naming the file
    (``what`` it should be) and the cause: missing, a directory, empty, not a torch file, or
    holding objects other than tensors."""
    path = check_nonempty_file(Path(path), what)
    try:
        with warnings.catch_warnings():  # torch's legacy-format notes: the one line says it
            warnings.simplefilter("ignore")
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle, zip and torch errors alike
        raise ModelFileError(
            f"{path} is not a readable torch {what} of tensors: {_unreadable_because(error)}"
        ) from None
    if not isinstance(loaded, dict):
        raise ModelFileError(f"{path} holds a {type(loaded).__name__}, not a state dict")
    names = [key for key in loaded if not isinstance(key, str)]
    if names:
        raise ModelFileError(f"{path} holds entries not named by strings, as {names[0]!r}")
    return loaded


def strip_prefix(state: dict[str, Tensor], prefix: str, path: Path) -> dict[str, Tensor]:
    """``state`` without ``prefix`` (``nn.DataParallel``'s ``module.``) on the keys that have
    it, when any has: a key without it stays as it is, so an extra tensor is named as such
    rather than hiding the layout; a key present both ways is refused naming ``path``."""
    if not any(key.startswith(prefix) for key in state):
        return state
    stripped = {key[len(prefix) :] if key.startswith(prefix) else key: key for key in state}
    if len(stripped) < len(state):
        twice = sorted(
            key for key in state if key.startswith(prefix) and key[len(prefix) :] in state
        )
        raise ModelFileError(f"{path} holds tensors both with and without {prefix!r}: {twice[:5]}")
    return {key: state[original] for key, original in stripped.items()}


def layer(level: int, step: int, index: int) -> str:
    """The state-dict prefix of layer ``index`` (0 ActNorm, 1 mixing, 2 coupling) of step
    ``step`` of level ``level``."""
    return f"bijector.levels.{level}.steps.{step}.bijectors.{index}"


def exit_network(level: int) -> str:
    """The state-dict prefix of level ``level``'s split-prior network."""
    return f"bijector.levels.{level}.exit.coupling.network"


class TensorMap:
    """A strict map from a foreign state dict onto glowflow's: every glowflow tensor must be
    given once, every source tensor used (or named as ignored) and finite, and every shape the
    model's, else a :class:`~glowflow.errors.ModelFileError` naming the source file and the
    tensors."""

    def __init__(self, source: dict[str, Tensor], path: Path) -> None:
        self.source = source
        self.path = path
        self.used: set[str] = set()
        self.target: dict[str, Tensor] = {}
        self.origin: dict[str, tuple[str, ...]] = {}
        """For each glowflow tensor, the source tensors taken since the previous :meth:`put`
        (what a wrong shape is named by)."""
        self._taken: list[str] = []  # every take, in order
        self._put_mark = 0  # where the takes of the next put begin

    def has(self, key: str) -> bool:
        return key in self.source

    def shape(self, key: str, rank: Optional[int] = None) -> tuple[int, ...]:
        """Source tensor ``key``'s shape (what a hyper-parameter is read from), without marking
        it used; refused when it is missing or not of ``rank`` dimensions."""
        if key not in self.source:
            raise ModelFileError(
                f"{self.path} lacks tensor {key!r}: not the checkpoint layout this converter reads"
            )
        shape = tuple(self.source[key].shape)
        if rank is not None and len(shape) != rank:
            raise ModelFileError(
                f"{self.path}: tensor {key!r} has shape {shape}, not {rank} dimensions"
            )
        return shape

    def take(self, key: str) -> Tensor:
        """A copy of source tensor ``key``, marked used; refused when it is missing or holds a
        NaN or an infinity."""
        self.shape(key)
        value = self.source[key]
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise ModelFileError(f"{self.path}: tensor {key!r} holds NaN or infinite values")
        self.used.add(key)
        self._taken.append(key)
        return value.detach().clone()

    @contextmanager
    def fitting(self, what: str) -> Iterator[None]:
        """Compute ``what`` from several source tensors: torch's refusal of shapes that do not
        fit together (a conv, a product) becomes one line naming the file and the tensors
        taken for it."""
        start = len(self._taken)
        try:
            yield
        except (RuntimeError, IndexError) as error:
            if isinstance(error, ModelFileError):
                raise
            taken = ", ".join(map(repr, self._taken[start:])) or "its tensors"
            cause = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise ModelFileError(
                f"{self.path}: tensors {taken} do not fit together for {what} ({cause})"
            ) from None

    def put(self, key: str, value: Tensor) -> None:
        """Give glowflow tensor ``key``, made from the source tensors taken since the last
        ``put``."""
        if key in self.target:
            raise AssertionError(f"glowflow tensor {key} given twice")
        self.target[key] = value
        self.origin[key] = tuple(self._taken[self._put_mark :])
        self._put_mark = len(self._taken)

    def finish(self, config: GlowConfig, ignored: tuple[str, ...] = ()) -> dict[str, Tensor]:
        """The complete glowflow state dict for ``config``. ActNorm ``initialized`` flags are
        set (the sources keep theirs outside the state dict) and a ``reverse`` permutation's
        indices (which the sources do not store either) come from the built model."""
        expected = Flow(Glow(config)).state_dict()
        for key, value in expected.items():
            if key.endswith(".initialized") and key not in self.target:
                self.target[key] = torch.tensor(True)
            if (
                config.permutation == "reverse"
                and key.endswith((".perm", ".inverse_perm"))
                and key not in self.target
            ):
                self.target[key] = value
        missing = sorted(set(expected) - set(self.target))
        extra = sorted(set(self.target) - set(expected))
        if missing or extra:
            raise AssertionError(
                f"converter bug for {self.path}: missing {missing[:5]}, unknown {extra[:5]}"
            )
        for key, value in expected.items():
            if tuple(self.target[key].shape) != tuple(value.shape):
                origin = self.origin.get(key)
                named = (
                    f"tensor {', '.join(map(repr, origin))}" if origin else f"the tensor for {key}"
                )
                raise ModelFileError(
                    f"{self.path}: {named} gives glowflow's {key} the shape "
                    f"{tuple(self.target[key].shape)}, the model needs "
                    f"{tuple(value.shape)} (hyper-parameters do not match)"
                )
            if not (value.is_floating_point() and self.target[key].dtype == torch.float64):
                self.target[key] = self.target[key].to(value.dtype)
        unused = sorted(
            k
            for k in set(self.source) - self.used
            if not any(k.startswith(p) or k == p for p in ignored)
        )
        if unused:
            raise ModelFileError(
                f"{self.path} has tensors this converter does not map: "
                f"{unused[:8]}{' ...' if len(unused) > 8 else ''}"
            )
        return self.target


def zero_conv_of_constant(
    weight: Tensor,
    bias: Tensor,
    log_gain: Tensor,
    gain_scale: float,
    shape: tuple[int, int, int],
    pad_value: float,
) -> Tensor:
    """What a zero-initialized 3x3 conv ``conv(pad(h)) * exp(gain_scale * log_gain)`` gives
    for an all-zero input ``h`` of shape ``(C_in, H, W)``: the ports' learned top prior,
    computed once with their operations. ``(C_out, H, W)``."""
    zeros = torch.zeros(1, *shape, dtype=weight.dtype)
    padded = F.pad(zeros, [1, 1, 1, 1], value=pad_value)
    out = F.conv2d(padded, weight, bias) * torch.exp(log_gain.reshape(-1, 1, 1) * gain_scale)
    return out[0]


def fold_input_map(tensors: dict[str, Tensor], scale: float, offset: float) -> None:
    """Fold a source's input convention ``x_source = scale * x + offset`` (``x`` glowflow's
    input) into the first ActNorm, in place: ``(x_source + b) exp(s) = (x + (b + offset) /
    scale) exp(s + log scale)``. The model's density on ``x`` then includes the map's Jacobian,
    ``log p(x) = log p_source(x_source) + D log scale``."""
    bias, log_scale = f"{layer(0, 0, 0)}.bias", f"{layer(0, 0, 0)}.log_scale"
    tensors[bias] = ((tensors[bias].double() + offset) / scale).to(tensors[bias].dtype)
    tensors[log_scale] = (tensors[log_scale].double() + math.log(scale)).to(
        tensors[log_scale].dtype
    )


@dataclass
class Converted:
    """A converter's result: the model, its tensors, its data, and where it came from."""

    glow: GlowConfig
    tensors: dict[str, Tensor]
    data: DataSpec
    source: dict[str, Any] = field(default_factory=dict)

    def flow(self) -> Flow:
        """The glowflow model with the converted weights (float64 when the source's are), in
        eval mode."""
        flow = Flow(Glow(self.glow))
        if any(t.dtype == torch.float64 for t in self.tensors.values()):
            flow.double()  # a float64 source stays float64
        flow.load_state_dict(self.tensors)
        return flow.eval()

    def save(self, out: Path, command: Optional[str] = None, name: Optional[str] = None) -> Path:
        """Write the model folder ``out``."""
        source = dict(self.source)
        if command:
            source["convert_command"] = command
        return save_model(self.flow(), out, self.data, None, source, None, name)
