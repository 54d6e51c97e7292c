"""The fast paths of issue 20: sampling in the device's fastest precision, compiled encoding
and decoding, CPU-fused Adam and the benchmark's time breakdown.

* ``Flow.sample`` picks bf16 where the device has bf16 matrix units (``precision=None``) and
  keeps ``"fp32"`` exact: an fp32 sample is ``decode`` of the same latents, bit for bit;
* a compiled Glow ``decode`` and ``encode`` are one graph each (``fullgraph=True``), equal
  the eager ones to 1e-5 (latents: relative to their size), round-trip to 1e-5 in fp32,
  recover every integer level with bf16 networks, and follow a change of the weights
  without recompiling from a stale cache; with gradients disabled a compiled call reads the
  1x1 convolutions' caches, checked on entry (no triangular solve in the graph);
* a fused CPU Adam step told that the gradients are not finite changes nothing;
* the breakdown's classes add up to the wall time and put a convolution's time under
  ``convolution`` and a pointwise chain's under ``elementwise``.
"""

from __future__ import annotations

from typing import Callable

import pytest
import torch

from glowflow import Flow
from glowflow.bench.breakdown import CLASSES, OUTSIDE, operator_class, time_breakdown
from glowflow.bijectors.invconv import cached_matrices_in_graphs
from glowflow.compiled import compiled_call
from glowflow.errors import ConfigError
from glowflow.precision import (
    SAMPLING_PRECISIONS,
    fast_precision,
    has_bf16_matrix_units,
    sampling_precision,
)
from glowflow.training.step import make_optimizer
from test_precision import random_flow

CPU = torch.device("cpu")


def _random_glow() -> Flow:
    """A small Glow (LU 1x1, affine couplings, learned Gaussian exit priors and top prior)
    with every weight randomized, in eval mode."""
    return random_flow(learn_top_prior=True, exit_prior="gaussian")


def test_sampling_precision_defaults_to_the_devices_fast_one() -> None:
    assert fast_precision(CPU) == ("bf16" if has_bf16_matrix_units(CPU) else "fp32")
    assert sampling_precision(None, CPU) == sampling_precision("auto", CPU) == fast_precision(CPU)
    for name in SAMPLING_PRECISIONS[1:]:
        assert sampling_precision(name, CPU) == name
    assert sampling_precision(None, CPU, torch.float64) == "fp32"  # a float64 model stays so
    with pytest.raises(ConfigError, match="sampling precision must be one of"):
        sampling_precision("fp8", CPU)


def test_a_cpu_without_bf16_units_samples_in_fp32(monkeypatch: pytest.MonkeyPatch) -> None:
    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        monkeypatch.setattr(torch.cpu, probe, lambda: False, raising=False)
    assert not has_bf16_matrix_units(CPU) and sampling_precision(None, CPU) == "fp32"
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    assert sampling_precision("auto", CPU) == "bf16"


def test_fp32_samples_are_the_decoded_latents_and_the_default_is_the_fast_precision() -> None:
    flow = _random_glow()

    def draw(**options: object) -> torch.Tensor:
        return flow.sample(6, 0.4, generator=torch.Generator().manual_seed(3), **options)

    generator = torch.Generator().manual_seed(3)
    latents = [
        torch.randn(6, *shape, generator=generator).mul_(0.4) for shape in flow.latent_shapes
    ]
    with torch.no_grad():
        decoded = flow.decode(latents)
    assert decoded.isfinite().all()  # random weights: higher temperatures may overflow
    assert torch.equal(draw(precision="fp32"), decoded)
    assert torch.equal(draw(), draw(precision=fast_precision(CPU)))
    low = draw(precision="bf16")
    assert low.dtype == torch.float32 and 0 < (low - decoded).abs().max() < 0.05


def test_compiled_decode_and_encode_are_one_graph_each_and_equal_eager() -> None:
    flow = _random_glow()
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(1)) - 0.5
    decode = torch.compile(type(flow).decode, fullgraph=True)
    encode = torch.compile(type(flow).encode, fullgraph=True)
    with torch.no_grad():
        latents = flow.encode(x)
        compiled_latents = encode(flow, x)
        for eager, compiled in zip(latents, compiled_latents):  # relative: latents reach ~4
            assert (eager - compiled).abs().max() < 1e-5 * eager.abs().max()
        assert (decode(flow, latents) - flow.decode(latents)).abs().max() < 1e-5
        assert (decode(flow, compiled_latents) - x).abs().max() < 1e-5
        # a change of the weights is seen: the graph reads the parameters, not a stale cache
        lu = next(m for m in flow.modules() if type(m).__name__ == "InvertibleConv1x1LU")
        lu.log_s.add_(0.1)
        assert (decode(flow, latents) - flow.decode(latents)).abs().max() < 1e-5
        assert (decode(flow, latents) - x).abs().max() > 1e-3


def test_compiled_calls_read_the_checked_cache_and_follow_weight_changes() -> None:
    """With gradients disabled a compiled graph reads the 1x1 convolutions' caches (no
    triangular solve runs), checked on entry: a changed weight is seen without recompiling."""
    flow = _random_glow()
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(1)) - 0.5
    decode = torch.compile(type(flow).decode, fullgraph=True)

    def solves(fn: Callable[[], object]) -> int:
        with torch.profiler.profile() as profile:
            fn()
        return sum(e.name == "aten::linalg_solve_triangular" for e in profile.events())

    with torch.no_grad():
        latents = flow.encode(x)
        assert solves(lambda: decode(flow, latents)) > 0  # outside the context: computed
        with cached_matrices_in_graphs(flow):
            assert (decode(flow, latents) - flow.decode(latents)).abs().max() < 1e-5
            assert solves(lambda: decode(flow, latents)) == 0
        with cached_matrices_in_graphs(flow):
            reference = decode(flow, latents)
        assert torch.equal(compiled_call(flow, "decode", latents, None), reference)
        lu = next(m for m in flow.modules() if type(m).__name__ == "InvertibleConv1x1LU")
        lu.log_s.add_(0.1)
        with torch._dynamo.config.patch(error_on_recompile=True):
            changed = compiled_call(flow, "decode", latents, None)
            with cached_matrices_in_graphs(flow):
                assert torch.equal(decode(flow, latents), changed)
        assert (changed - flow.decode(latents)).abs().max() < 1e-5
        assert (changed - x).abs().max() > 1e-3
    with pytest.raises(RuntimeError, match="gradients disabled"):
        with cached_matrices_in_graphs(flow):
            pass


@pytest.mark.slow
def test_compiled_bf16_round_trips_recover_every_integer_level() -> None:
    """Images at the centres of their 256 bins, encoded and decoded through the compiled
    graphs with bf16 networks, come back in their bins; compiled bf16 sampling is finite."""
    flow = _random_glow()
    levels = torch.randint(0, 256, (8, 3, 32, 32), generator=torch.Generator().manual_seed(2))
    x = (levels + 0.5) / 256 - 0.5
    with torch.no_grad(), flow.sampling_precision("bf16"):
        rebuilt = compiled_call(flow, "decode", compiled_call(flow, "encode", x, None), None)
    assert torch.equal(torch.floor((rebuilt + 0.5) * 256).long(), levels)
    with torch.no_grad():
        samples = flow.sample(8, 0.4, precision="bf16", compile=True)
    assert samples.isfinite().all()


def test_a_fused_cpu_adam_step_on_non_finite_gradients_changes_nothing() -> None:
    weight = torch.nn.Parameter(torch.randn(5, 3))
    optimizer = make_optimizer("adam", [weight], 1e-2, CPU)
    assert optimizer.defaults["fused"]
    weight.grad = torch.ones_like(weight)
    optimizer.step()
    before = weight.detach().clone()
    state = {k: v.clone() for k, v in optimizer.state[weight].items()}
    weight.grad = torch.full_like(weight, float("nan"))
    optimizer.found_inf = torch.ones(())  # type: ignore[attr-defined]
    optimizer.step()
    assert torch.equal(weight.detach(), before)
    for key, value in optimizer.state[weight].items():
        assert torch.equal(value, state[key]), key


def test_operator_classes() -> None:
    assert operator_class("aten::convolution_backward") == "convolution"
    assert operator_class("autograd::engine::evaluate_function: MulBackward0") == "elementwise"
    assert operator_class("aten::_foreach_norm") == "reduction"
    assert operator_class("Optimizer.step#Adam.step") == "optimizer"
    assert operator_class("aten::cat") == "layout"
    assert operator_class("aten::addmm") == "matmul"
    assert operator_class("## Call CompiledFxGraph fabc ##") == "compiled"
    assert operator_class("aten::empty") == "other"


def test_the_breakdown_adds_up_and_puts_the_time_where_it_is() -> None:
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(64, 64, 3, padding=1)
    image = torch.randn(8, 64, 32, 32)
    vector = torch.randn(1 << 16)

    def pointwise() -> torch.Tensor:
        out = vector
        for _ in range(50):
            out = (out * 1.0001 + 0.5).exp().log()
        return out

    with torch.no_grad():
        conv(image)
        for fn, main in ((lambda: conv(image), "convolution"), (pointwise, "elementwise")):
            shares = time_breakdown(fn)
            assert set(shares) == {*CLASSES, OUTSIDE}
            assert abs(sum(shares.values()) - 1) < 1e-9 and min(shares.values()) >= 0
            assert shares[main] > 0.5, shares
