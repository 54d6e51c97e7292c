"""The GlowConfig options that express other implementations' architectures: each gives an
exact bijection whose log-det is the Jacobian's (float64, autograd), with non-zero weights."""

from __future__ import annotations

import pytest
import torch

import glowflow as gf

OPTIONS = [
    {"coupling_network": "glow_actnorm"},
    {"coupling_output": "scale_shift"},
    {"coupling_output": "interleaved", "scale_fn": "sigmoid"},
    {"coupling_shift": "before_scale"},
    {"exit_prior": "gaussian", "exit_output": "interleaved"},
    {"zero_conv_padding": "ones"},
    {"coupling_shift": "before_scale", "mask": "checkerboard"},
]


@pytest.mark.parametrize(
    "options", OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items())
)
def test_option_is_an_exact_bijection_with_the_jacobians_log_det(options: dict) -> None:
    glow = gf.Glow(
        output_shape=(1, 4, 4),
        num_glow_blocks=1,
        num_steps_per_block=2,
        grab_after_block=(0.5,),
        hidden_channels=4,
        seed=0,
        **options,
    ).double()
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in glow.parameters():
            parameter.add_(
                0.1 * torch.randn(parameter.shape, generator=generator, dtype=torch.float64)
            )
    glow.eval()
    glow(torch.rand(8, 1, 4, 4, dtype=torch.float64) - 0.5)  # data-dependent ActNorm init
    x = torch.rand(2, 1, 4, 4, dtype=torch.float64, generator=generator) - 0.5
    encoding = glow.forward_levels(x)
    assert torch.allclose(glow.inverse_levels(encoding.latents)[0], x, atol=1e-12, rtol=0)
    for index in range(2):
        jacobian = torch.autograd.functional.jacobian(
            lambda v: glow(v.view(1, 1, 4, 4))[0][0], x[index].reshape(-1)
        )
        expected = torch.linalg.slogdet(jacobian).logabsdet
        assert torch.allclose(encoding.logdet[index], expected, atol=1e-10, rtol=0)
