"""Faults that once gave wrong numbers without an error: ActNorm's initialization flag kept in
two places, and the layers' choice lists restated apart from ``GlowConfig``'s."""

from __future__ import annotations

import io
from typing import Callable

import pytest
import torch

import glowflow as gf
from glowflow.bijectors import coupling, exit, networks
from glowflow.config import GlowConfig


def _loaded_by_hand(write: Callable[[gf.ActNorm], None]) -> gf.ActNorm:
    """A fresh ActNorm with trained-looking parameters and its flag set by ``write``."""
    layer = gf.ActNorm(3)
    with torch.no_grad():
        layer.bias.copy_(torch.tensor([0.5, -1.0, 2.0]))
        layer.log_scale.copy_(torch.tensor([0.1, -0.2, 0.3]))
    write(layer)
    return layer


def _load_state_dict_with_swap(layer: gf.ActNorm) -> None:
    """``load_state_dict`` as torch does it under ``swap_module_params_on_conversion``."""
    state = {k: v.clone() for k, v in layer.state_dict().items()}
    state["initialized"] = torch.tensor(True)
    previous = torch.__future__.get_swap_module_params_on_conversion()
    torch.__future__.set_swap_module_params_on_conversion(True)
    try:
        layer.load_state_dict(state)
    finally:
        torch.__future__.set_swap_module_params_on_conversion(previous)


BUFFER_WRITES: dict[str, Callable[[gf.ActNorm], None]] = {
    "fill_": lambda layer: layer.initialized.fill_(1),
    "copy_": lambda layer: layer.initialized.copy_(torch.tensor(True)),
    "assignment": lambda layer: setattr(layer, "initialized", torch.tensor(True)),
    "swap_tensors": lambda layer: torch.utils.swap_tensors(layer.initialized, torch.tensor(True)),
    "load_state_dict(swap)": _load_state_dict_with_swap,
    "load_state_dict(assign)": lambda layer: layer.load_state_dict(
        {**layer.state_dict(), "initialized": torch.tensor(True)}, assign=True
    ),
    "torch.load of the buffer": lambda layer: layer.initialized.copy_(
        torch.load(io.BytesIO(_saved(torch.tensor(True))), weights_only=True)
    ),
}


def _saved(tensor: torch.Tensor) -> bytes:
    buffer = io.BytesIO()
    torch.save(tensor, buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("write", BUFFER_WRITES, ids=list(BUFFER_WRITES))
def test_actnorm_reads_its_buffer_however_it_was_written(write: str) -> None:
    layer = _loaded_by_hand(BUFFER_WRITES[write])
    before = [p.detach().clone() for p in layer.parameters()]
    assert layer.is_initialized
    layer(torch.randn(16, 3, 4, 4) * 7 + 5)  # would set very different statistics
    for old, new in zip(before, layer.parameters()):
        assert torch.equal(old, new.detach()), f"{write}: the forward re-initialized the layer"


def test_actnorm_reinitializes_when_its_buffer_is_cleared_by_hand() -> None:
    layer = gf.ActNorm(2)
    layer(torch.randn(8, 2, 3, 3))
    layer.initialized.fill_(False)
    assert not layer.is_initialized
    y, _ = layer(torch.randn(32, 2, 3, 3) * 4 + 3)
    torch.testing.assert_close(y.mean(dim=(0, 2, 3)), torch.zeros(2), atol=1e-5, rtol=0)
    assert bool(layer.initialized) and layer.is_initialized


def test_actnorm_flag_survives_moves_and_copies() -> None:
    layer = _loaded_by_hand(lambda layer: layer.initialized.fill_(True))
    moved = layer.to(torch.float64)  # replaces no bool buffer, but must still read True
    assert moved.is_initialized
    buffer = io.BytesIO()
    torch.save(layer, buffer)
    buffer.seek(0)
    copy = torch.load(buffer, weights_only=False)
    copy.initialized.fill_(False)  # the copy's own buffer: the original is untouched
    assert layer.is_initialized and not copy.is_initialized


def test_memory_modes_see_a_flag_written_by_hand() -> None:
    """The invertible mode runs only on initialized steps: it must see a hand-set flag."""
    from glowflow.memory import _needs_saving

    step = gf.Chain(gf.ActNorm(4), gf.InvertibleConv1x1(4))
    h = torch.randn(2, 4, 2, 2, requires_grad=True)
    assert not _needs_saving([step], h)
    step.bijectors[0].initialized.fill_(True)
    assert _needs_saving([step], h)


def test_compiled_actnorm_has_one_graph_and_initializes_once() -> None:
    layer = gf.ActNorm(3)
    compiled = torch.compile(layer, backend="aot_eager", fullgraph=True)
    x = torch.randn(8, 3, 2, 2) * 3 + 1
    y, _ = compiled(x)
    torch.testing.assert_close(y.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5, rtol=0)
    bias = layer.bias.detach().clone()
    compiled(x * 5)
    assert torch.equal(layer.bias.detach(), bias) and layer.is_initialized


@pytest.mark.skipif(not torch.cuda.is_available(), reason="reads a flag kept on a GPU")
def test_actnorm_on_a_gpu_reads_its_flag_once_per_write() -> None:
    """A cached flag costs no device sync; a write by hand costs one read, then none."""
    layer = gf.ActNorm(3).to("cuda")
    x = torch.randn(4, 3, 2, 2, device="cuda")
    layer.set_initialized(True)
    torch.cuda.set_sync_debug_mode("error")
    try:
        layer(x)
        layer(x)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    layer.initialized.fill_(True)
    assert layer.is_initialized  # the one read
    torch.cuda.set_sync_debug_mode("error")
    try:
        layer(x)
    finally:
        torch.cuda.set_sync_debug_mode("default")


# ---------------------------------------------------------------- choice lists, said once
LAYER_CHOICES = {
    "coupling_shift": coupling.SHIFT_ORDERS,
    "exit_prior": exit.EXIT_PRIORS,
    "zero_conv_padding": networks.ZERO_CONV_PADDINGS,
    "coupling_network": networks.HIDDEN_LAYERS,
}


@pytest.mark.parametrize("field", LAYER_CHOICES)
def test_layers_take_their_choices_from_glow_config(field: str) -> None:
    assert LAYER_CHOICES[field] is GlowConfig.choices(field)


@pytest.mark.parametrize(
    "build",
    [
        lambda: gf.ChannelCoupling(4, torch.nn.Identity(), shift="sideways"),
        lambda: gf.Exit((4, 2, 2), 2, prior="sideways"),
        lambda: networks.ZeroConv2d(2, 2, padding="sideways"),
        lambda: gf.glow_network(2, 2, 4, hidden="sideways"),
    ],
    ids=list(LAYER_CHOICES),
)
def test_layers_name_the_config_choices_when_refusing(build: Callable[[], object]) -> None:
    with pytest.raises(ValueError, match="must be one of \\(.*\\), got 'sideways'"):
        build()
