"""The Flow model: densities, bits per dimension, encode/decode, sampling."""

from __future__ import annotations

import math
from typing import Optional

import pytest
import torch
from torch import Tensor

import glowflow as gf
from glowflow.bijectors.base import Bijector, sum_except_batch


class NormalQuantile(Bijector):
    """``z = Phi^{-1}(x + 1/2)``: maps the uniform density on [-1/2, 1/2)^D to N(0, I)."""

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        normal = torch.distributions.Normal(0.0, 1.0)
        z = normal.icdf(x + 0.5)
        return z, -sum_except_batch(normal.log_prob(z))

    def inverse(self, z: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        normal = torch.distributions.Normal(0.0, 1.0)
        return normal.cdf(z) - 0.5, sum_except_batch(normal.log_prob(z))


@pytest.mark.parametrize("n_bins", [2, 17, 32, 256])
def test_uniform_density_has_log2_n_bins_bits_per_dim(n_bins: int) -> None:
    flow = gf.Flow(NormalQuantile(), event_shape=(1, 8, 8))
    x = torch.rand(5, 1, 8, 8, dtype=torch.float64) * 0.98 - 0.49
    torch.testing.assert_close(
        flow.log_prob(x), torch.zeros(5, dtype=torch.float64), atol=1e-9, rtol=0
    )
    bpd = flow.bits_per_dim(x, n_bins)
    torch.testing.assert_close(bpd, torch.full_like(bpd, math.log2(n_bins)), atol=1e-10, rtol=0)
    assert gf.bits_per_dim(torch.zeros(3), 64, n_bins).eq(math.log2(n_bins)).all()


def test_log_prob_is_base_density_plus_logdet() -> None:
    glow = gf.Glow((1, 8, 8), 2, 2, hidden_channels=8, seed=0, learn_top_prior=True)
    flow = gf.Flow(glow)
    x = torch.rand(4, 1, 8, 8) - 0.5
    flow.initialize(x)
    z, logdet = glow(x)
    expected = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(dim=1) + logdet
    torch.testing.assert_close(flow.log_prob(x), expected, atol=1e-4, rtol=1e-6)
    bpd = (-expected + 64 * math.log(17)) / (64 * math.log(2))
    torch.testing.assert_close(flow.bits_per_dim(x, 17), bpd, atol=1e-5, rtol=1e-6)


def test_sample_shapes_temperature_and_generator() -> None:
    glow = gf.Glow((3, 8, 8), 2, 2, hidden_channels=8, seed=0)
    flow = gf.Flow(glow)
    flow.initialize(torch.rand(8, 3, 8, 8) - 0.5)
    a = flow.sample(4, temperature=0.7, generator=torch.Generator().manual_seed(0))
    b = flow.sample(4, temperature=0.7, generator=torch.Generator().manual_seed(0))
    assert a.shape == (4, 3, 8, 8) and torch.equal(a, b)
    mode = flow.sample(2, temperature=0.0)
    zeros = [torch.zeros(2, *shape) for shape in glow.latent_shapes]
    torch.testing.assert_close(mode, flow.decode(zeros))
    with pytest.raises(ValueError, match="temperature"):
        flow.sample(1, temperature=-1.0)


def test_encode_decode_exact_and_latent_shapes() -> None:
    glow = gf.Glow((3, 16, 16), 3, 2, hidden_channels=8, seed=0).double()
    flow = gf.Flow(glow)
    x = torch.rand(3, 3, 16, 16, dtype=torch.float64) - 0.5
    flow.initialize(x)
    zs = flow.encode(x)
    assert [tuple(z.shape[1:]) for z in zs] == glow.latent_shapes
    torch.testing.assert_close(flow.decode(zs), x, atol=1e-12, rtol=0)


def test_class_conditional_log_prob_depends_on_label() -> None:
    glow = gf.Glow((1, 8, 8), 2, 2, hidden_channels=8, seed=0, num_classes=10)
    flow = gf.Flow(glow)
    x = torch.rand(4, 1, 8, 8) - 0.5
    labels = torch.tensor([0, 1, 2, 3])
    flow.initialize(x, labels)
    with torch.no_grad():
        glow.top_prior.class_table.normal_()
    log_prob = flow(x, labels)  # a flow's output is log p(x | y) alone
    assert log_prob.shape == (4,)
    class_logits = flow.class_logits(flow.forward_levels(x, labels))
    assert flow.num_classes == 10
    assert class_logits.shape == (4, 10)
    assert not torch.allclose(log_prob, flow.log_prob(x, (labels + 1) % 10))
    with pytest.raises(ValueError, match="needs the class labels"):
        flow.log_prob(x)
    samples = flow.sample(4, 0.5, y=labels)
    torch.testing.assert_close(
        flow.decode(flow.encode(samples, labels), labels), samples, atol=1e-4, rtol=0
    )


def test_flow_over_a_plain_chain() -> None:
    chain = gf.Chain(gf.ActNorm(4), gf.InvertibleConv1x1(4), event_shape=(4,))
    flow = gf.Flow(chain)
    x = torch.randn(6, 4)
    flow.initialize(x)
    zs = flow.encode(x)
    assert len(zs) == 1 and zs[0].shape == (6, 4)
    torch.testing.assert_close(flow.decode(zs), x, atol=1e-5, rtol=0)
    assert flow.sample(3).shape == (3, 4)


def test_a_chain_without_a_shape_says_to_pass_event_shape() -> None:
    chain = gf.Chain(gf.ActNorm(4), gf.InvertibleConv1x1(4))
    with pytest.raises(ValueError, match=r"event_shape=\(1, 8, 8\)"):
        gf.Flow(chain)
    assert gf.Flow(chain, event_shape=(4,)).event_shape == (4,)


def test_validate_args_on_flow() -> None:
    flow = gf.Flow(gf.Glow((1, 8, 8), 1, 1, hidden_channels=4), validate_args=True)
    with pytest.raises(ValueError, match=r"Flow.forward: input must have shape \(B, 1, 8, 8\)"):
        flow.log_prob(torch.zeros(2, 8, 8))
    x = torch.zeros(2, 1, 8, 8)
    x[1, 0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match="infinite"):
        flow.log_prob(x)


def test_raw_top_is_the_top_latent_before_the_prior() -> None:
    glow = gf.Glow((1, 8, 8), 2, 2, hidden_channels=8, seed=0, num_classes=10)
    x, labels = torch.rand(4, 1, 8, 8) - 0.5, torch.tensor([0, 1, 2, 3])
    gf.Flow(glow).initialize(x, labels)
    with torch.no_grad():
        glow.top_prior.class_table.normal_()
        glow.top_prior.log_sigma.normal_()
    h = x
    for level in glow.levels:  # the levels by hand, without the prior
        h = level.squeeze(h)[0]
        for step in level.steps:
            h = step(h)[0]
        h = level.exit(h).continuing
    torch.testing.assert_close(glow.forward_levels(x, labels).raw_top, h)


def test_a_chain_that_hides_a_multiscale_bijector_is_refused() -> None:
    glow = gf.Glow((1, 8, 8), 2, 2, hidden_channels=8, seed=0)
    with pytest.raises(ValueError, match="holds a multi-scale Glow, whose per-level latents"):
        gf.Flow(gf.Chain(glow, gf.ActNorm(64)))
    assert gf.Flow(glow).latent_shapes == [(2, 4, 4), (8, 2, 2)]
