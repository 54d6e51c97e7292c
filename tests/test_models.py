"""The model builders: NICE, RealNVP (images and vectors), MAF, IAF."""

from __future__ import annotations

import math
from typing import Callable, Optional

import pytest
import torch

from checks import check_bijector, randomize_parameters
from glowflow.bijectors.parity import ParityCoupling
from glowflow.bijectors.reshape import Reshape
from glowflow.bijectors.scaling import NICEScaling
from glowflow.errors import ConfigError
from glowflow.flow import Flow, standard_normal_log_prob
from glowflow.models import iaf, maf, nice, realnvp, realnvp_tabular

CONTEXT = 2


@pytest.fixture(autouse=True)
def _seed() -> None:
    """Default initializations draw from the global RNG: make every test order-independent."""
    torch.manual_seed(0)


# name -> (builder, conditional); the flows with batch statistics are checked in eval mode
BUILDERS: dict[str, tuple[Callable[[], Flow], bool]] = {
    "maf": (lambda: maf(4, num_layers=3, hidden=16), False),
    "maf_conditional_actnorm": (
        lambda: maf(4, num_layers=2, hidden=16, context_features=CONTEXT, use_actnorm=True),
        True,
    ),
    "iaf": (lambda: iaf(4, num_layers=3, hidden=16, scale_fn="sigmoid"), False),
    "iaf_conditional": (lambda: iaf(4, num_layers=2, hidden=16, context_features=CONTEXT), True),
    "nice_tabular": (lambda: nice((5,), num_layers=4, hidden=16, num_hidden_layers=2), False),
    "nice_image": (lambda: nice((1, 8, 8), hidden=32, num_hidden_layers=1), False),
    "nice_logistic": (lambda: nice((5,), hidden=16, num_hidden_layers=1, prior="logistic"), False),
    "realnvp_image": (
        lambda: realnvp(
            (1, 8, 8),
            hidden_channels=4,
            num_res_blocks=1,
            normalization="weight",
            batch_norm_layers=False,
        ),
        False,
    ),
    "realnvp_image_batchnorm": (
        lambda: realnvp((1, 4, 4), hidden_channels=4, num_res_blocks=1),
        False,
    ),
    "realnvp_tabular": (lambda: realnvp_tabular(5, num_layers=4, hidden=16), False),
    "maf_image_batchnorm": (
        lambda: maf((1, 2, 3), num_layers=2, hidden=8, batch_norm_layers=True),
        False,
    ),
    "iaf_image": (lambda: iaf((1, 2, 3), num_layers=2, hidden=8), False),
}
BATCH_STATISTICS = ("realnvp_image_batchnorm", "maf_image_batchnorm")
IDENTITY_AT_INIT = [
    name
    for name in BUILDERS
    if name not in ("iaf", "maf_conditional_actnorm", "nice_logistic", *BATCH_STATISTICS)
]


def _inputs(
    flow: Flow, conditional: bool, batch: int = 3
) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(batch, *flow.event_shape, generator=generator, dtype=torch.float64)
    if not conditional:
        return x, None
    return x, torch.randn(batch, CONTEXT, generator=generator, dtype=torch.float64)


@pytest.mark.parametrize("name", IDENTITY_AT_INIT)
def test_fresh_models_are_exactly_the_standard_normal(name: str) -> None:
    builder, conditional = BUILDERS[name]
    flow = builder().double()
    x, y = _inputs(flow, conditional)
    expected = standard_normal_log_prob([x])
    torch.testing.assert_close(flow.log_prob(x, y), expected, atol=1e-12, rtol=0)


@pytest.mark.parametrize("name", BUILDERS)
def test_model_bijectors_pass_the_bijector_checks(name: str) -> None:
    builder, conditional = BUILDERS[name]
    flow = builder()
    x, y = _inputs(flow, conditional, batch=2)
    check_bijector(flow.bijector, x, y, train=name not in BATCH_STATISTICS)


@pytest.mark.parametrize("name", BUILDERS)
def test_models_encode_decode_exactly_and_sample_the_right_shapes(name: str) -> None:
    builder, conditional = BUILDERS[name]
    flow = builder().double()
    randomize_parameters(flow)
    flow.train(name not in BATCH_STATISTICS)
    x, y = _inputs(flow, conditional)
    log_prob = flow.log_prob(x, y)
    assert log_prob.shape == (3,) and torch.isfinite(log_prob).all()
    latents = flow.encode(x, y)
    assert [tuple(z.shape[1:]) for z in latents] == flow.latent_shapes
    torch.testing.assert_close(flow.decode(latents, y), x, atol=1e-10, rtol=0)
    samples = flow.sample(3, y=y, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (3, *flow.event_shape) and torch.isfinite(samples).all()


@pytest.mark.parametrize("name", ["maf", "iaf", "nice_tabular", "realnvp_tabular"])
def test_tabular_stacks_make_every_latent_entry_depend_on_every_data_entry(name: str) -> None:
    flow = BUILDERS[name][0]().double()
    randomize_parameters(flow, scale=0.5)
    x, _ = _inputs(flow, False, batch=1)
    jac = torch.autograd.functional.jacobian(lambda v: flow.bijector(v)[0], x)[0, :, 0, :]
    assert (jac != 0).all()


MEAN = torch.tensor([1.0, -2.0], dtype=torch.float64)
COVARIANCE = torch.tensor([[2.0, 1.2], [1.2, 1.0]], dtype=torch.float64)


@pytest.mark.parametrize(
    "builder",
    [
        lambda: maf(2, num_layers=2, hidden=32, num_hidden_layers=1, seed=0),
        lambda: realnvp_tabular(2, num_layers=4, hidden=32, num_hidden_layers=1, seed=0),
        lambda: iaf(2, num_layers=2, hidden=32, num_hidden_layers=1, seed=0),
    ],
    ids=["maf", "realnvp_tabular", "iaf"],
)
def test_tabular_flows_fit_a_correlated_gaussian_to_its_entropy(
    builder: Callable[[], Flow],
) -> None:
    target = torch.distributions.MultivariateNormal(MEAN, COVARIANCE)
    entropy = 0.5 * torch.logdet(2 * math.pi * math.e * COVARIANCE)  # exact
    torch.manual_seed(0)
    flow = builder().double()
    optimizer = torch.optim.Adam(flow.parameters(), lr=1e-2)
    for _ in range(300):
        loss = -flow.log_prob(target.sample((256,))).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    test = target.sample((20000,))
    with torch.no_grad():
        nll = -flow.log_prob(test).mean()
    excess = nll + target.log_prob(test).mean()  # estimates KL(target || model) >= 0
    assert abs(float(excess)) < 0.03
    assert abs(float(nll - entropy)) < 0.05


def test_realnvp_factors_out_to_the_standard_normal_unless_asked() -> None:
    def exit_parameters(flow: Flow) -> int:
        return sum(p.numel() for p in flow.bijector.exits.parameters())

    assert exit_parameters(realnvp((1, 8, 8), hidden_channels=4)) == 0
    assert exit_parameters(realnvp((1, 8, 8), hidden_channels=4, learn_split_prior=True)) > 0


def test_nice_on_images_flattens_alternates_parity_and_ends_with_scaling() -> None:
    flow = nice((1, 8, 8), num_layers=3, hidden=8, num_hidden_layers=1)
    chain = flow.bijector
    assert isinstance(chain[0], Reshape) and flow.latent_shapes == [(64,)]
    couplings = [b for b in chain if isinstance(b, ParityCoupling)]
    assert [c.parity for c in couplings] == [0, 1, 0]
    assert all(c.kind == "additive" for c in couplings)
    assert isinstance(chain[-1], NICEScaling)
    assert type(nice((4,), prior="logistic", hidden=8).bijector[-1]).__name__ == "LogisticToNormal"


def test_seed_reproduces_the_build_without_touching_the_global_rng() -> None:
    state = torch.get_rng_state()
    first = realnvp_tabular(4, seed=3).state_dict()
    assert torch.equal(torch.get_rng_state(), state)
    second = realnvp_tabular(4, seed=3).state_dict()
    assert all(torch.equal(first[key], second[key]) for key in first)


def test_builders_reject_shapes_they_cannot_model() -> None:
    with pytest.raises(ConfigError, match=r"nice: event_shape must be an int D, \(D,\) or"):
        nice((8, 8))
    with pytest.raises(ConfigError, match="maf: event_shape"):
        maf((2, 3))
    with pytest.raises(ConfigError, match="prior must be one of"):
        nice(4, prior="laplace")
    with pytest.raises(ConfigError, match="divisible by 4"):
        realnvp((1, 6, 6), num_scales=3)
    with pytest.raises(ConfigError, match="1x1 last scale"):
        realnvp((1, 4, 4), num_scales=3)
    with pytest.raises(ValueError, match="dim >= 2"):
        realnvp_tabular(1)
    with pytest.raises(ValueError, match="num_layers"):
        maf(3, num_layers=0)
