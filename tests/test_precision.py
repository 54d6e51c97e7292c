"""Mixed precision: networks in bf16/fp16, the flow's own arithmetic in fp32 (DESIGN 12).

Each flow layer inverts exactly (to fp32 rounding) in every precision, under ``--precision``
and under a user's own ``torch.autocast``; latents, log-dets and bits/dim are float32; a
model trained in bf16 evaluates within 0.01 bits/dim in fp32; fp16 training scales its loss;
the compiled objective has no graph break and matches eager.
"""

from __future__ import annotations

from typing import Callable

import pytest
import torch

from glowflow import Flow, Glow
from glowflow.bench import get_config
from glowflow.bijectors.chain import Chain
from glowflow.bijectors.invconv import apply_channel_matrix
from glowflow.dequantization import UniformDequantizer
from glowflow.precision import PRECISIONS, make_grad_scaler, network_precision
from glowflow.training.config import TrainConfig
from glowflow.training.step import Objective, make_optimizer, training_step

DEVICE = torch.empty(0).device  # the session's: the DEVICE, or CUDA under pytest --device cuda
LOW = ("bf16", "fp16")


def _user_autocast(name: str) -> torch.autocast:
    return torch.autocast(DEVICE.type, dtype={"bf16": torch.bfloat16, "fp16": torch.float16}[name])


CONTEXTS: dict[str, Callable[[str], object]] = {
    "--precision": lambda name: network_precision(name, DEVICE),
    "user autocast": _user_autocast,
}


def random_flow(**options: object) -> Flow:
    """A small Glow with every network weight randomized (zero-initialized convs would make
    the networks' precision irrelevant)."""
    config = get_config("cifar10-small").replace(
        num_steps_per_block=2, hidden_channels=16, **options
    )
    flow = Flow(Glow(config))
    generator = torch.Generator().manual_seed(0)
    flow.initialize(torch.rand(8, 3, 32, 32, generator=generator) - 0.5)
    with torch.no_grad():
        for parameter in flow.parameters():
            parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator))
    return flow.eval()


@pytest.mark.parametrize("context", list(CONTEXTS))
@pytest.mark.parametrize("name", LOW)
def test_every_layer_inverts_exactly_with_low_precision_networks(name: str, context: str) -> None:
    flow = random_flow(learn_top_prior=True, exit_prior="gaussian")
    glow = flow.bijector
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad(), CONTEXTS[context](name):  # type: ignore[attr-defined]
        for level, (channels, height, width) in zip(glow.levels, glow.config.level_shapes()):
            h = torch.randn(4, channels, height, width, generator=generator)
            layers = [layer for step in level.steps for layer in step]
            for layer in layers:
                y, logdet = layer(h)
                back, inverse_logdet = layer.inverse(y)
                assert y.dtype == logdet.dtype == torch.float32, type(layer).__name__
                assert (back - h).abs().max() < 1e-5, type(layer).__name__
                assert (logdet + inverse_logdet).abs().max() < 1e-3, type(layer).__name__
            continuing, latent, logdet = level.exit(h)
            back, _ = level.exit.inverse(continuing, latent)
            assert latent.dtype == logdet.dtype == torch.float32
            assert (back - h).abs().max() < 1e-5
        top = torch.randn(4, *glow.latent_shapes[-1], generator=generator)
        assert glow.top_prior is not None
        assert (glow.top_prior.inverse(glow.top_prior(top)[0])[0] - top).abs().max() < 1e-5


@pytest.mark.parametrize("name", LOW)
def test_the_flows_own_arithmetic_ignores_autocast(name: str) -> None:
    """The 1x1 convolution gives the same bits under autocast as in fp32, and a step's
    network is the only part that changes with the precision."""
    x = torch.randn(2, 12, 8, 8)
    matrix = torch.randn(12, 12)
    exact = apply_channel_matrix(x, matrix)
    with _user_autocast(name):
        assert torch.equal(apply_channel_matrix(x, matrix), exact)
    flow = random_flow()
    step = flow.bijector.levels[0].steps[0]
    assert isinstance(step, Chain)
    actnorm, invconv, _ = step
    h = torch.randn(2, 12, 16, 16)
    with torch.no_grad():
        plain = invconv(actnorm(h)[0])[0]
        with network_precision(name, DEVICE):
            assert torch.equal(invconv(actnorm(h)[0])[0], plain)


@pytest.mark.parametrize("name", PRECISIONS)
def test_log_prob_is_float32_and_close_to_fp32(name: str) -> None:
    flow = random_flow(learn_top_prior=True)
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(2)) - 0.5
    with torch.no_grad():
        reference = flow.bits_per_dim(x, 256)
        with network_precision(name, DEVICE):
            latents = flow.encode(x)
            bpd = flow.bits_per_dim(x, 256)
    assert bpd.dtype == torch.float32 and all(z.dtype == torch.float32 for z in latents)
    assert (bpd - reference).abs().max() < 0.05


def test_full_precision_round_trip_is_exact() -> None:
    flow = random_flow(learn_top_prior=True)
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(3)) - 0.5
    with torch.no_grad():
        assert (flow.decode(flow.encode(x)) - x).abs().max() < 1e-5


def _tiny_objective(precision: str) -> tuple[Objective, tuple[torch.Tensor, None, torch.Tensor]]:
    torch.manual_seed(0)
    flow = Flow(Glow(get_config("tiny")))
    levels = torch.randint(0, 17, (16, 1, 8, 8), generator=torch.Generator().manual_seed(4))
    noise = torch.rand(levels.shape, generator=torch.Generator().manual_seed(5))
    dequantizer = UniformDequantizer(17)
    flow.initialize(dequantizer(levels, noise)[0])
    return Objective(flow, dequantizer, precision=precision), (levels, None, noise)


def test_bf16_trained_model_evaluates_within_a_hundredth_in_fp32() -> None:
    objective, inputs = _tiny_objective("bf16")
    optimizer = make_optimizer("adam", list(objective.parameters()), 1e-2, DEVICE)
    for _ in range(30):
        assert bool(training_step(objective, optimizer, inputs, 50.0).ok)
    with torch.no_grad():
        bf16 = objective(*inputs)[1]
        objective.precision = "fp32"
        fp32 = objective(*inputs)[1]
    assert abs(float(bf16) - float(fp32)) < 0.01


def test_fp16_training_scales_the_loss_without_a_host_read() -> None:
    objective, inputs = _tiny_objective("fp16")
    optimizer = make_optimizer("adam", list(objective.parameters()), 1e-3, DEVICE)
    scaler = make_grad_scaler("fp16", DEVICE)
    assert scaler is not None and make_grad_scaler("bf16", DEVICE) is None
    before = [p.detach().clone() for p in objective.parameters()]
    outputs = [training_step(objective, optimizer, inputs, 50.0, scaler=scaler) for _ in range(3)]
    assert all(bool(out.ok) and torch.isfinite(out.grad_norm) for out in outputs)
    assert any(not torch.equal(a, b) for a, b in zip(before, objective.parameters()))
    assert scaler.get_scale() == 2.0**16  # no overflow: the scale stays


def test_compiled_objective_has_one_graph_and_matches_eager() -> None:
    """``fullgraph=True`` fails on any graph break; ``aot_eager`` traces forward and backward
    as the default backend does, without compiling kernels (fast)."""
    objective, inputs = _tiny_objective("bf16")
    compiled = torch.compile(objective, backend="aot_eager", fullgraph=True)
    results = []
    for model in (compiled, objective):
        objective.zero_grad(set_to_none=True)
        loss, _ = model(*inputs)
        loss.backward()
        results.append((loss.detach(), [p.grad.clone() for p in objective.parameters()]))
    (compiled_loss, compiled_grads), (eager_loss, eager_grads) = results
    assert torch.allclose(compiled_loss, eager_loss, atol=1e-5)
    for a, b in zip(compiled_grads, eager_grads):
        assert torch.allclose(a, b, atol=1e-4, rtol=1e-4)


def test_train_config_fields() -> None:
    assert TrainConfig().precision == "fp32" and not TrainConfig().compile
    assert TrainConfig(precision="bf16", compile=True).precision == "bf16"
    with pytest.raises(ValueError, match="precision must be one of"):
        TrainConfig(precision="fp8")


def test_train_eval_sample_and_bench_take_the_flags() -> None:
    from glowflow.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["train", "--precision", "bf16", "--compile"])
    assert (args.precision, args.compile) == ("bf16", True)
    for command in (["eval", "run"], ["sample", "run"], ["bench"]):
        assert parser.parse_args([*command, "--precision", "fp16"]).precision in ("fp16", ["fp16"])
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--precision", "fp8"])
