"""TarFlow: patches, the causal affine block (log-dets against autograd in float64, causality,
three inverses), guidance, the denoiser, fp32 flow arithmetic under bf16 autocast, and
ml-tarflow's own numbers (tests/fixtures/tarflow, scripts/fixtures/make_tarflow.py)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable

import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file

from checks import check_bijector, randomize_parameters
from glowflow.bijectors.causal_affine import (
    CausalAffine,
    Decoding,
    Guidance,
    JacobiOptions,
    logdet_mean_to_sum,
    logdet_sum_to_mean,
    logits_guidance,
    tarflow_guidance,
)
from glowflow.bijectors.constant_scale import ConstantScale
from glowflow.bijectors.patchify import Patchify
from glowflow.convert.tarflow import convert_tarflow
from glowflow.errors import ConfigError, MissingFileError, ModelFileError
from glowflow.models.tarflow import TarFlowModel, decoding, noise_augment, tarflow


def draw(*shape: int, seed: int = 1, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def block(**options: object) -> CausalAffine:
    """A tiny block on 5 tokens of 3 entries, width 16, two heads of 8."""
    torch.manual_seed(0)
    return CausalAffine(5, 3, 16, 1, head_dim=8, **options)  # type: ignore[arg-type]


def random_block(**options: object) -> CausalAffine:
    b = block(**options).double()
    randomize_parameters(b, 0.2)
    return b.eval()


def small_model(**options: object) -> TarFlowModel:
    """A TarFlow on (2, 4, 4) images: 4 tokens of 8 entries, 3 blocks, randomized."""
    settings: dict = dict(num_classes=3, head_dim=8, seed=0)
    settings.update(options)
    model = tarflow((2, 4, 4), 2, 16, 3, 1, **settings)
    randomize_parameters(model, 0.05)
    return model.eval()


BLOCKS: dict[str, dict] = {
    "forwards": {},
    "reverse": {"reverse": True},
    "start_token": {"start_token": True},
    "start_token_reverse": {"start_token": True, "reverse": True},
    "softplus": {"scale": "softplus"},
    "softplus_start_reverse": {"scale": "softplus", "start_token": True, "reverse": True},
    "conditional": {"num_classes": 3},
}


# -- patches and fixed scaling -------------------------------------------------------------


def test_patchify_order_is_unfold_and_inverts() -> None:
    x = draw(2, 3, 4, 6)
    tokens, logdet = Patchify(2, (3, 4, 6))(x)
    expected = F.unfold(x, 2, stride=2).transpose(1, 2)  # ml-tarflow's patchify
    assert torch.equal(tokens, expected)
    assert torch.equal(logdet, torch.zeros(2, dtype=torch.float64))
    assert torch.equal(Patchify(2, (3, 4, 6)).inverse(tokens)[0], x)
    check_bijector(Patchify(2, (3, 4, 6)), x)
    check_bijector(Patchify(2), draw(2, 1, 4, 4))  # square images without an event shape


def test_patchify_rejects_shapes_it_cannot_cut() -> None:
    with pytest.raises(ValueError, match="divisible by 3"):
        Patchify(3, (1, 4, 6))
    with pytest.raises(ValueError, match="square"):
        Patchify(2).inverse(draw(1, 6, 4))


def test_constant_scale() -> None:
    check_bijector(ConstantScale(-2.5), draw(3, 2, 2, 2))
    _, logdet = ConstantScale(2.0)(draw(2, 3, 4, 4))
    torch.testing.assert_close(logdet, torch.full((2,), 48 * math.log(2.0), dtype=torch.float64))


# -- the causal affine block -----------------------------------------------------------------


@pytest.mark.parametrize("name", list(BLOCKS))
def test_causal_block_passes_the_bijector_checks(name: str) -> None:
    conditional = "num_classes" in BLOCKS[name]
    context = torch.tensor([2, -1]) if conditional else None
    check_bijector(block(**BLOCKS[name]), draw(2, 5, 3), context)


@pytest.mark.parametrize("name", ["forwards", "reverse", "start_token", "start_token_reverse"])
def test_token_t_depends_on_earlier_tokens_only(name: str) -> None:
    b = random_block(**BLOCKS[name])
    x = draw(1, 5, 3)
    jacobian = torch.autograd.functional.jacobian(lambda v: b(v)[0], x).reshape(5, 3, 5, 3)
    order = list(range(5))[::-1] if b.reverse else list(range(5))
    for i, t in enumerate(order):
        for j, u in enumerate(order):
            part = jacobian[t, :, u, :]
            if j > i:
                assert torch.equal(part, torch.zeros_like(part)), (t, u)
            elif j == i:
                assert torch.equal(part, torch.diag(part.diagonal()))
    first = order[0]  # the first token read: unchanged unless a start token transforms it
    unchanged = torch.equal(jacobian[first, :, first, :], torch.eye(3, dtype=torch.float64))
    assert unchanged == (b.start is None)


def test_block_starts_as_the_identity() -> None:
    for options in BLOCKS.values():
        b = block(**options).double()
        x = draw(2, 5, 3)
        context = torch.tensor([0, 1]) if "num_classes" in options else None
        z, logdet = b(x, context)
        torch.testing.assert_close(z, x, atol=1e-15, rtol=0)
        torch.testing.assert_close(logdet, torch.zeros(2, dtype=torch.float64), atol=1e-14, rtol=0)


def test_null_class_is_the_mean_embedding() -> None:
    b = random_block(num_classes=3)
    x = draw(2, 5, 3)
    null = b(x, torch.tensor([-1, -1]))
    assert torch.equal(null[0], b(x)[0]) and torch.equal(null[1], b(x)[1])
    with torch.no_grad():
        b.class_embed.copy_(b.class_embed.mean(0, keepdim=True).expand(3, -1).clone())
    torch.testing.assert_close(b(x, torch.tensor([1, 2]))[0], null[0], atol=1e-14, rtol=0)


def test_logdet_mean_and_sum_convert_exactly() -> None:
    # integer log-scales over 2^k entries: every sum and quotient is exact in float64
    a = torch.randint(-8, 8, (3, 4, 8), generator=torch.Generator().manual_seed(0)).double()
    total, mean = -a.sum(dim=(1, 2)), -a.mean(dim=(1, 2))
    assert torch.equal(logdet_sum_to_mean(total, 32), mean)
    assert torch.equal(logdet_mean_to_sum(mean, 32), total)


# -- inverses ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(BLOCKS))
def test_three_inverses_agree(name: str) -> None:
    b = random_block(**BLOCKS[name])
    context = torch.tensor([0, -1, 2]) if b.num_classes else None
    x = draw(3, 5, 3)
    z, logdet = b(x, context)
    with torch.no_grad():
        cached = b.invert(z, context, Decoding("cached"))
        plain = b.invert(z, context, Decoding("plain"))
        # chunks of 2 positions iterated to a zero update: exact after 2 iterations each
        jacobi = b.invert(z, context, Decoding("jacobi", jacobi=JacobiOptions(0.0, 8, 2)))
    torch.testing.assert_close(cached.x, x, atol=1e-12, rtol=0)
    torch.testing.assert_close(cached.logdet, -logdet, atol=1e-12, rtol=0)
    torch.testing.assert_close(plain.x, cached.x, atol=1e-13, rtol=0)
    torch.testing.assert_close(plain.logdet, cached.logdet, atol=1e-13, rtol=0)
    torch.testing.assert_close(jacobi.x, cached.x, atol=1e-13, rtol=0)
    torch.testing.assert_close(jacobi.logdet, cached.logdet, atol=1e-12, rtol=0)
    assert jacobi.report is not None and jacobi.report.residual < 1e-12
    assert all(n <= 3 for n in jacobi.report.iterations)  # 2 to converge, 1 to see it
    assert cached.report is None and plain.report is None


def test_jacobi_converges_to_the_exact_inverse_and_reports_its_error() -> None:
    b = random_block()
    x = draw(2, 5, 3)
    z, _ = b(x)
    errors, residuals = [], []
    with torch.no_grad():
        for iterations in (1, 2, 3, 4):  # one chunk of all 4 positions
            result = b.invert(z, None, Decoding("jacobi", jacobi=JacobiOptions(0.0, iterations, 4)))
            assert result.report is not None and result.report.iterations == [iterations]
            errors.append(float((result.x - x).abs().max()))
            residuals.append(result.report.residual)
    assert errors[0] > 1e-4 and residuals[0] > 1e-4  # one sweep is not the inverse ...
    assert errors[-1] < 1e-13 and residuals[-1] < 1e-13  # ... 4 sweeps of 4 positions are
    assert errors == sorted(errors, reverse=True)
    with torch.no_grad():
        loose = b.invert(z, None, Decoding("jacobi", jacobi=JacobiOptions(1e-6, 32, 4)))
    assert loose.report is not None and loose.report.updates[0] <= 1e-6
    assert float((loose.x - x).abs().max()) < 1e-2


# -- guidance ------------------------------------------------------------------------------


def test_guidance_rules_at_weight_zero_are_the_identity() -> None:
    a, b, a_u, b_u = (draw(2, 5, 3, seed=s) for s in range(4))
    assert all(torch.equal(u, v) for u, v in zip(tarflow_guidance(a, b, a_u, b_u, 0.0), (a, b)))
    assert all(torch.equal(u, v) for u, v in zip(logits_guidance(a, b, a_u, b_u, 0.0), (a, b)))


def test_logits_guidance_is_the_gaussian_of_the_guided_log_density() -> None:
    # (1 + w) log N(x; mu_c, s_c^2) - w log N(x; mu_u, s_u^2) is quadratic in x; where
    # s_c <= s_u its slope is -(x - mu) / sigma^2 for the rule's (mu, sigma)
    log_sigma_c, mu_c, mu_u, x = (draw(50, seed=s) for s in range(4))
    log_sigma_u = log_sigma_c + draw(50, seed=5).abs()
    w = 1.7
    log_sigma, mu = logits_guidance(log_sigma_c, mu_c, log_sigma_u, mu_u, w)
    slope = (
        -(1 + w) * (x - mu_c) / (2 * log_sigma_c).exp() + w * (x - mu_u) / (2 * log_sigma_u).exp()
    )
    torch.testing.assert_close(slope, -(x - mu) / (2 * log_sigma).exp())


@pytest.mark.parametrize("rule", ["tarflow", "logits"])
def test_guidance_zero_is_plain_sampling_and_more_is_not(rule: str) -> None:
    model = small_model()
    labels = torch.tensor([0, 1, 2])

    def sample(**options: object) -> torch.Tensor:
        generator = torch.Generator().manual_seed(3)
        return model.sample(3, 0.8, labels, generator, **options)  # type: ignore[arg-type]

    plain = sample()
    assert torch.equal(sample(guidance=0.0, guidance_rule=rule), plain)
    assert torch.equal(sample(guidance=0.0, guidance_rule=rule, attention_temperature=0.5), plain)
    assert not torch.allclose(sample(guidance=2.0, guidance_rule=rule), plain, atol=1e-3)
    annealed = sample(guidance=2.0, guidance_rule=rule, annealed_guidance=True)
    assert not torch.allclose(annealed, sample(guidance=2.0, guidance_rule=rule), atol=1e-4)
    assert torch.isfinite(annealed).all()


def test_attention_temperature_guidance_of_an_unconditional_model() -> None:
    model = small_model(num_classes=None)

    def sample(**options: object) -> torch.Tensor:
        return model.sample(2, 1.0, None, torch.Generator().manual_seed(4), **options)  # type: ignore[arg-type]

    plain = sample()
    # a guide at temperature 1 is the model itself: no effect, bit for bit with TarFlow's rule
    assert torch.equal(sample(guidance=1.5), plain)
    torch.testing.assert_close(sample(guidance=1.5, guidance_rule="logits"), plain)
    assert not torch.allclose(sample(guidance=1.5, attention_temperature=0.3), plain, atol=1e-4)


def test_guided_inverses_agree() -> None:
    b = random_block(num_classes=3)
    z, labels = draw(2, 5, 3), torch.tensor([1, 2])
    guidance = Guidance(1.5, "logits", 0.7, annealed=True)
    with torch.no_grad():
        cached = b.invert(z, labels, Decoding("cached", guidance))
        plain = b.invert(z, labels, Decoding("plain", guidance))
        jacobi = b.invert(z, labels, Decoding("jacobi", guidance, JacobiOptions(0.0, 8, 3)))
    torch.testing.assert_close(plain.x, cached.x, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(jacobi.x, cached.x, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(jacobi.logdet, cached.logdet, atol=1e-12, rtol=1e-12)
    assert jacobi.report is not None and jacobi.report.residual < 1e-12


def test_bad_decoding_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="inverse must be one of"):
        Decoding("newton")
    with pytest.raises(ConfigError, match="guidance rule"):
        Guidance(1.0, "cfg++")
    with pytest.raises(ConfigError, match="weight must be >= 0"):
        Guidance(-1.0)
    with pytest.raises(ConfigError, match="max_iter and chunk"):
        JacobiOptions(1e-3, 0, 4)


# -- the model -----------------------------------------------------------------------------


def test_model_round_trips_with_every_inverse_and_starts_as_the_identity() -> None:
    fresh = tarflow((2, 4, 4), 2, 16, 2, 1, head_dim=8, seed=0)
    x = draw(3, 2, 4, 4, dtype=torch.float32)
    expected = -0.5 * (x.pow(2).sum(dim=(1, 2, 3)) + 32 * math.log(2 * math.pi))
    torch.testing.assert_close(fresh.log_prob(x), expected)
    model = small_model()
    labels = torch.tensor([0, 2, -1])
    with torch.no_grad():
        (z,) = model.encode(x, labels)
        assert z.shape == (3, 4, 8)
        for method in ("cached", "plain", "jacobi"):
            options = Decoding(method, jacobi=JacobiOptions(0.0, 8, 2))
            torch.testing.assert_close(model.decode([z], labels, options), x, atol=1e-5, rtol=0)
        samples = model.sample(4, 0.7, torch.tensor([0, 1, 2, 0]), inverse="jacobi")
    assert samples.shape == (4, 2, 4, 4) and torch.isfinite(samples).all()


def test_builder_options() -> None:
    model = tarflow((1, 4, 4), 2, 16, 3, [3, 1, 1], head_dim=8, start_token=True, scale="softplus")
    assert [len(b.transformer.layers) for b in model.blocks] == [3, 1, 1]
    assert [b.reverse for b in model.blocks] == [False, True, False]
    assert all(b.start is not None and b.scale == "softplus" for b in model.blocks)
    assert (
        model.num_classes is None
        and tarflow((1, 4, 4), 2, 16, 1, 1, 5, head_dim=8).num_classes == 5
    )
    scaled = tarflow((1, 4, 4), 2, 16, 1, 1, head_dim=8, input_scale=2.0)
    x = draw(2, 1, 4, 4, dtype=torch.float32)
    plain = tarflow((1, 4, 4), 2, 16, 1, 1, head_dim=8)
    torch.testing.assert_close(scaled.log_prob(x), plain.log_prob(2 * x) + 16 * math.log(2.0))
    for bad, match in (
        (dict(patch_size=3), "must divide"),
        (dict(layers_per_block=[1, 2]), "one per block"),
        (dict(channels=20), "multiple of head_dim"),
        (dict(scale="tanh"), "scale must be one of"),
    ):
        settings: dict = dict(patch_size=2, channels=16, num_blocks=3, layers_per_block=1)
        settings.update(bad)
        with pytest.raises(ConfigError, match=match):
            tarflow((1, 4, 4), head_dim=8, **settings)


def test_denoiser_adds_sigma_squared_times_the_score() -> None:
    model = small_model().double()
    x, labels = draw(2, 2, 4, 4), torch.tensor([1, 0])
    sigma = 0.3
    denoised = model.denoise(x, sigma, labels)

    def log_p(v: torch.Tensor) -> torch.Tensor:
        return model.log_prob(v, labels).sum()

    score = torch.autograd.functional.jacobian(log_p, x)
    torch.testing.assert_close(denoised, x + sigma**2 * score, atol=1e-12, rtol=1e-12)
    # the score itself, by central differences of log p along one entry of example 0
    step = torch.zeros_like(x)
    step[0, 1, 2, 3] = 1e-5
    difference = (model.log_prob(x + step, labels) - model.log_prob(x - step, labels))[0] / 2e-5
    torch.testing.assert_close(score[0, 1, 2, 3], difference, atol=1e-6, rtol=1e-6)
    per_example = model.denoise(x, torch.tensor([0.3, 0.0], dtype=torch.float64), labels)
    torch.testing.assert_close(per_example[0], denoised[0])
    assert torch.equal(per_example[1], x[1])
    model.noise_std = sigma
    torch.testing.assert_close(model.denoise(x, None, labels), denoised)


def test_noise_augmentation() -> None:
    x = torch.zeros(4000, 3)
    noisy = noise_augment(x, 0.1, torch.Generator().manual_seed(0))
    assert abs(float(noisy.std()) - 0.1) < 0.005
    assert torch.equal(noise_augment(x, 0.1, torch.Generator().manual_seed(0)), noisy)
    with pytest.raises(ConfigError):
        noise_augment(x, -1.0)


def test_flow_arithmetic_is_fp32_under_bf16_autocast() -> None:
    model = small_model()
    x, labels = draw(3, 2, 4, 4, dtype=torch.float32), torch.tensor([0, 1, 2])
    with torch.no_grad():
        reference = model.log_prob(x, labels)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            (z,) = model.encode(x, labels)
            log_p = model.log_prob(x, labels)
            back = model.decode([z], labels)
    assert z.dtype == log_p.dtype == back.dtype == torch.float32
    # networks in bf16 move log p by their rounding only; the decoding reads the same bf16
    # network outputs the encoding did (to rounding), so the round trip is fp32-exact-ish:
    # 2e-7 measured on the CPU, where an affine update in bf16 alone would be ~1e-3
    torch.testing.assert_close(log_p, reference, atol=0.5, rtol=1e-2)
    torch.testing.assert_close(back, x, atol=1e-4, rtol=0)


# -- ml-tarflow's checkpoints --------------------------------------------------------------

FIXTURES = Path(__file__).parent / "fixtures" / "tarflow"
CASES = {
    "conditional": dict(in_channels=3, head_dim=64),
    "heads16": dict(in_channels=1, head_dim=16),
}
on_cpu = pytest.mark.cpu_only(reason="converts ml-tarflow checkpoint files on the CPU")


def expected(case: str) -> tuple[dict[str, torch.Tensor], dict]:
    tensors = load_file(FIXTURES / case / "expected.safetensors")
    with safe_open(FIXTURES / case / "expected.safetensors", "pt") as handle:
        meta = json.loads(handle.metadata()["meta"])
    return tensors, meta


@on_cpu
@pytest.mark.parametrize("case", list(CASES))
def test_converted_model_repeats_ml_tarflow(case: str) -> None:
    e, meta = expected(case)
    converted = convert_tarflow(FIXTURES / case / "model.pth", data="tarflow", **CASES[case])
    model, dims = converted.model, meta["dims"]
    assert converted.settings["num_classes"] == (meta["options"]["num_classes"] or None)
    y, sample_y = e.get("y"), e.get("sample_y")
    with torch.no_grad():
        torch.testing.assert_close(model.log_prob(e["x"], y), e["log_px"], rtol=1e-5, atol=0)
        z, logdet = model.bijector(e["x"], y)
        torch.testing.assert_close(z, e["z"], rtol=0, atol=1e-5)
        torch.testing.assert_close(
            logdet_sum_to_mean(logdet, dims), e["logdets"], rtol=1e-5, atol=1e-7
        )
        temperature = meta["options"]["attn_temp"]
        for key, options in (
            ("samples", decoding()),
            (
                "samples_guided",
                decoding(guidance=meta["options"]["guidance"], attention_temperature=temperature),
            ),
            (
                "samples_annealed",
                decoding(
                    guidance=2 * meta["options"]["guidance"],
                    attention_temperature=temperature,
                    annealed_guidance=True,
                ),
            ),
        ):
            torch.testing.assert_close(
                model.decode([e["noise"]], sample_y, options), e[key], rtol=0, atol=1e-4
            )
        jacobi = decoding("jacobi", jacobi_tol=0.0, jacobi_max_iter=64, jacobi_chunk=64)
        torch.testing.assert_close(
            model.decode([e["noise"]], sample_y, jacobi), e["samples"], rtol=0, atol=1e-4
        )


@on_cpu
def test_converted_model_reads_glowflow_data_by_default() -> None:
    e, meta = expected("conditional")
    model = convert_tarflow(FIXTURES / "conditional" / "model.pth").model
    with torch.no_grad():
        log_p = model.log_prob(e["x"] / 2, e["y"])
        torch.testing.assert_close(
            log_p, e["log_px"] + meta["dims"] * math.log(2.0), rtol=1e-5, atol=0
        )
        samples = model.decode([e["noise"]], e["sample_y"])
    torch.testing.assert_close(samples, e["samples"] / 2, rtol=0, atol=1e-4)


def _broken(tmp_path: Path, change: Callable[[dict[str, torch.Tensor]], None]) -> Path:
    state = torch.load(FIXTURES / "conditional" / "model.pth", weights_only=True)
    change(state)
    path = tmp_path / "model.pth"
    torch.save(state, path)
    return path


def _set(key: str, value: torch.Tensor) -> Callable[[dict[str, torch.Tensor]], None]:
    return lambda state: state.__setitem__(key, value)


def _nan(state: dict[str, torch.Tensor]) -> None:
    state["blocks.1.attn_blocks.0.mlp.main.2.weight"][0, 0] = float("nan")


@on_cpu
@pytest.mark.parametrize(
    "change, match",
    [
        (
            lambda s: s.pop("blocks.1.attn_blocks.0.attention.proj.bias"),
            "lacks tensor 'blocks.1.attn_blocks.0.attention.proj.bias'",
        ),
        (_set("blocks.0.extra", torch.zeros(2)), r"does not: \['blocks.0.extra'\]"),
        (_set("blocks.1.pos_embed", torch.zeros(4, 32)), "'blocks.1.pos_embed' has shape"),
        (_nan, "'blocks.1.attn_blocks.0.mlp.main.2.weight' has non-finite"),
        (_set("var", torch.full((4, 48), 2.0)), "'var'"),
        (
            _set("blocks.0.attn_mask", torch.ones(4, 4)),
            "'blocks.0.attn_mask' is not the causal mask",
        ),
        (lambda s: s.pop("blocks.1.class_embed"), "lacks tensor 'blocks.1.class_embed'"),
        (_set("blocks.0.proj_out.weight", torch.zeros(48, 64)), "volume-preserving"),
    ],
)
def test_converter_is_strict(tmp_path: Path, change: Callable, match: str) -> None:
    with pytest.raises(ModelFileError, match=match):
        convert_tarflow(_broken(tmp_path, change))


class _Payload:
    def __reduce__(self):  # what a hostile checkpoint would run on unpickling
        return (exec, ("raise SystemExit('code ran')",))


@on_cpu
def test_converter_reads_tensors_only(tmp_path: Path) -> None:
    with pytest.raises(MissingFileError, match="does not exist"):
        convert_tarflow(tmp_path / "absent.pth")
    torch.save({"blocks.0.proj_in.weight": _Payload()}, tmp_path / "code.pth")
    with pytest.raises(
        ModelFileError, match="code.pth is not a readable torch ml-tarflow checkpoint"
    ):
        convert_tarflow(tmp_path / "code.pth")
    torch.save([torch.zeros(1)], tmp_path / "list.pth")
    with pytest.raises(ModelFileError, match="holds a list"):
        convert_tarflow(tmp_path / "list.pth")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(ModelFileError, match="not an ml-tarflow Model checkpoint"):
        convert_tarflow(tmp_path / "other.pth")
    with pytest.raises(ModelFileError, match="is in_channels right"):
        convert_tarflow(FIXTURES / "conditional" / "model.pth", in_channels=5)


def test_a_converted_tarflow_is_a_model_folder_that_loads_exactly(tmp_path):
    import glowflow as gf
    from glowflow.convert import convert

    source = Path(__file__).parent / "fixtures" / "tarflow" / "conditional" / "model.pth"
    converted = convert("tarflow", source)
    folder = converted.save(tmp_path / "tarflow", command="glowflow convert --from tarflow ...")
    loaded = gf.load_model(folder)
    assert loaded.family == "tarflow" and loaded.config.num_classes == loaded.data.num_classes
    x = torch.rand(3, *loaded.data.shape, generator=torch.Generator().manual_seed(0)) - 0.5
    y = torch.tensor([0, 1, 2])
    with torch.no_grad():
        assert torch.equal(loaded.flow.log_prob(x, y), converted.model.log_prob(x, y))


def test_sample_command_takes_tarflow_options_and_refuses_others(tmp_path, capsys):
    from glowflow.cli import main

    run = tmp_path / "run"
    common = ["--max-steps", "2", "--eval-every", "1", "--init-images", "16", "--no-progress"]
    assert main(["train", "--family", "tarflow", "--run-dir", str(run), *common]) == 0
    out = tmp_path / "jacobi.png"
    assert (
        main(["sample", str(run), "--inverse", "jacobi", "--guidance", "0", "--out", str(out)]) == 0
    )
    assert out.is_file()
    assert main(["sample", "pretrained:digits", "--inverse", "jacobi", "--out", str(out)]) == 2
    assert "--inverse: a glow model takes no such sampling option" in capsys.readouterr().err
    assert main(["sample", str(run), "--compile", "--out", str(out)]) == 2  # sequential inverse
    assert "--compile: a tarflow model takes no such sampling option" in capsys.readouterr().err


def test_noise_augmented_training_is_recorded_and_its_samples_are_denoised(tmp_path, capsys):
    import glowflow as gf
    from glowflow.cli import main
    from glowflow.training.step import Objective

    # the objective reads x + sigma eps: its bits/dim differ from the clean objective's
    flow = gf.families.build(
        gf.families.FAMILIES["tarflow"].template.replace(event_shape=(1, 8, 8), seed=0)
    )
    levels = torch.randint(0, 17, (4, 1, 8, 8))
    from glowflow.dequantization import make_dequantizer

    dequantizer = make_dequantizer("uniform", (1, 8, 8), 17)
    noise = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    gaussian = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    clean = Objective(flow, dequantizer)(levels, None, noise)[1]
    noisy = Objective(flow, dequantizer, noise_augment=0.1)(levels, None, noise, gaussian)
    assert not torch.equal(clean, noisy[1])
    assert torch.equal(
        Objective(flow, dequantizer, noise_augment=0.1)(levels, None, noise, 0 * gaussian)[1], clean
    )

    run = tmp_path / "run"
    common = ["--max-steps", "2", "--eval-every", "1", "--init-images", "16", "--no-progress"]
    assert (
        main(
            [
                "train",
                "--family",
                "tarflow",
                "--run-dir",
                str(run),
                "--noise-augment",
                "0.05",
                *common,
            ]
        )
        == 0
    )
    assert "[a model of data + N(0, 0.05^2) noise]" in capsys.readouterr().out
    assert json.loads((run / "result.json").read_text())["noise_augment"] == 0.05
    loaded = gf.load_model(run)
    assert loaded.record["noise_augment"] == 0.05 and loaded.flow.noise_std == 0.05
    generator = torch.Generator().manual_seed(3)
    raw = loaded.flow.sample(2, 1.0, generator=generator)
    generator = torch.Generator().manual_seed(3)
    denoised = loaded.flow.sample(2, 1.0, generator=generator, denoise=True)
    torch.testing.assert_close(denoised, loaded.flow.denoise(raw), rtol=0, atol=1e-6)


@pytest.mark.slow
def test_a_compiled_tarflow_run_trains_as_the_eager_one(tmp_path):
    """``--compile`` on a TarFlow run (forward and backward of the objective compiled): the
    same training bits/dim per step as the eager run, to float rounding."""
    from glowflow.cli import main
    from glowflow.training.run_log import read_metrics

    common = ["--preset", "tarflow", "--max-steps", "3", "--log-every", "1", "--threads", "1"]
    common += ["--final-eval-draws", "1", "--sample-count", "4", "--no-progress", "--device", "cpu"]
    for name, extra in (("eager", []), ("compiled", ["--compile"])):
        assert main(["train", *common, "--run-dir", str(tmp_path / name), *extra]) == 0
    eager, compiled = (read_metrics(tmp_path / n / "metrics.csv") for n in ("eager", "compiled"))
    assert [r["step"] for r in compiled] == [r["step"] for r in eager] == [1, 2, 3]
    for a, b in zip(eager, compiled):
        assert b["train_bpd"] == pytest.approx(a["train_bpd"], rel=1e-4)
    result = json.loads((tmp_path / "compiled" / "config.json").read_text())
    assert result["compile"] is True and result["family"] == "tarflow"
