"""ActNorm: data-dependent initialization and its persistence."""

from __future__ import annotations

import io

import torch

import glowflow as gf


def test_initialization_gives_zero_mean_unit_std_per_channel() -> None:
    layer = gf.ActNorm(3)
    x = torch.randn(16, 3, 4, 4) * torch.tensor([0.1, 2.0, 5.0]).view(1, 3, 1, 1) + 3.0
    y, logdet = layer(x)
    torch.testing.assert_close(y.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(
        y.std(dim=(0, 2, 3), unbiased=False), torch.ones(3), atol=1e-4, rtol=0
    )
    expected = -16 * torch.log(x.std(dim=(0, 2, 3), unbiased=False)).sum()
    torch.testing.assert_close(logdet, expected.expand(16), atol=1e-3, rtol=1e-5)
    assert bool(layer.initialized)


def test_zero_variance_channel_is_guarded() -> None:
    layer = gf.ActNorm(2)
    x = torch.randn(8, 2, 3, 3)
    x[:, 1] = 0.25
    y, logdet = layer(x)
    assert torch.isfinite(y).all() and torch.isfinite(logdet).all()
    assert layer.log_scale[1].item() == 0.0
    torch.testing.assert_close(y[:, 1], torch.zeros(8, 3, 3))


def test_initializes_only_once() -> None:
    layer = gf.ActNorm(2)
    layer(torch.randn(8, 2, 3, 3))
    bias = layer.bias.detach().clone()
    layer(torch.randn(8, 2, 3, 3) * 10 + 4)
    assert torch.equal(layer.bias.detach(), bias)


def test_loaded_model_does_not_reinitialize() -> None:
    glow = gf.Glow((1, 8, 8), 2, 2, hidden_channels=8, seed=0)
    flow = gf.Flow(glow)
    flow.initialize(torch.rand(16, 1, 8, 8) - 0.5)
    buffer = io.BytesIO()
    torch.save(flow.state_dict(), buffer)
    assert any(key.endswith("initialized") for key in flow.state_dict())

    fresh = gf.Flow(gf.Glow((1, 8, 8), 2, 2, hidden_channels=8, seed=1))
    buffer.seek(0)
    fresh.load_state_dict(torch.load(buffer))
    before = {k: v.clone() for k, v in fresh.state_dict().items()}
    other_data = torch.rand(16, 1, 8, 8) * 0.1  # would give very different ActNorm statistics
    fresh.log_prob(other_data)
    for key, value in fresh.state_dict().items():
        assert torch.equal(value, before[key]), f"{key} changed after loading"
    torch.testing.assert_close(fresh.log_prob(other_data), flow.log_prob(other_data))


def test_flow_initialize_reinitializes_every_actnorm() -> None:
    glow = gf.Glow((1, 8, 8), 1, 3, hidden_channels=8, seed=0)
    flow = gf.Flow(glow)
    flow.initialize(torch.rand(32, 1, 8, 8) - 0.5)
    first = glow.levels[0].steps[0][0].bias.detach().clone()
    flow.initialize(torch.rand(32, 1, 8, 8) * 3)
    assert not torch.equal(first, glow.levels[0].steps[0][0].bias.detach())
