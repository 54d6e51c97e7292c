"""Dequantization: the learned q(u | x) (Flow++) against the uniform one, and the bounds."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch.utils.data import TensorDataset

import glowflow as gf
from checks import check_bijector
from glowflow.bijectors.sigmoid import Sigmoid
from glowflow.dequantization import UniformDequantizer, VariationalDequantizer
from glowflow.training.evaluate import evaluate_bpd
from glowflow.training.step import Objective, make_optimizer, training_step

SHAPE, N_BINS = (1, 2, 2), 2
PROBABILITIES = torch.tensor([0.8, 0.2])  # binary pixels, i.i.d.: a smooth p leaves a gap in
# each bin that uniform noise cannot close and a learned q(u | x) can
ENTROPY_BPD = float(-(PROBABILITIES * PROBABILITIES.log2()).sum())  # per dimension


def data(count: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    draws = torch.multinomial(PROBABILITIES, count * 4, replacement=True, generator=generator)
    return draws.view(count, *SHAPE)


def fit(dequantizer: torch.nn.Module, steps: int = 300) -> gf.Flow:
    torch.manual_seed(0)
    flow = gf.Flow(gf.Glow(SHAPE, 1, 2, hidden_channels=16, seed=0, scale_fn="sigmoid"))
    train = data(2048, seed=1)
    generator = torch.Generator().manual_seed(2)
    flow.initialize(UniformDequantizer(N_BINS)(train[:256], torch.rand(256, *SHAPE))[0])
    objective = Objective(flow, dequantizer)
    optimizer = make_optimizer("adam", list(objective.parameters()), 5e-3, torch.device("cpu"))
    for step in range(steps):
        levels = train[torch.randint(0, len(train), (128,), generator=generator)]
        out = training_step(
            objective,
            optimizer,
            (levels, None, dequantizer.noise(levels, generator)),
            max_grad_norm=50.0,
        )
        assert bool(out.ok), step
    return flow


@pytest.fixture(scope="module")
def fitted() -> dict:
    torch.set_num_threads(1)
    uniform = UniformDequantizer(N_BINS)
    variational = VariationalDequantizer(SHAPE, N_BINS, num_steps=2, hidden_channels=16)
    return {"uniform": (fit(uniform), uniform), "variational": (fit(variational), variational)}


def bound(flow, dequantizer, draws: int = 8, weighted: bool = False) -> float:
    test = TensorDataset(data(2000, seed=3), torch.zeros(2000, dtype=torch.long))
    return evaluate_bpd(
        flow, test, dequantizer, draws=draws, batch_size=500, importance_weighted=weighted
    ).bpd


def test_variational_bound_is_above_the_entropy_and_below_the_uniform_bound(fitted) -> None:
    uniform, variational = bound(*fitted["uniform"]), bound(*fitted["variational"])
    assert ENTROPY_BPD < variational < uniform
    assert uniform < math.log2(N_BINS)  # both models learned something


def test_importance_weighted_bound_tightens_with_more_draws(fitted) -> None:
    flow, dequantizer = fitted["variational"]
    elbo = bound(flow, dequantizer, draws=8)
    weighted = [bound(flow, dequantizer, draws=k, weighted=True) for k in (1, 4, 16)]
    assert weighted[0] == pytest.approx(bound(flow, dequantizer, draws=1), abs=1e-6)
    assert weighted[2] < weighted[1] < weighted[0] and weighted[1] <= elbo
    assert weighted[2] > ENTROPY_BPD


def test_dequantizer_draws_stay_in_their_bins() -> None:
    dequantizer = VariationalDequantizer((2, 4, 4), 17, num_steps=3, hidden_channels=8)
    levels = torch.randint(0, 17, (5, 2, 4, 4))
    x, log_q = dequantizer(levels, dequantizer.noise(levels))
    assert torch.equal(torch.floor((x + 0.5) * 17).long(), levels)
    assert log_q.shape == (5,) and torch.isfinite(log_q).all()


def test_dequantizer_flow_passes_the_generic_checker() -> None:
    dequantizer = VariationalDequantizer((2, 4, 4), 17, num_steps=2, hidden_channels=8).double()
    levels = torch.randint(0, 17, (3, 2, 4, 4))
    context = dequantizer.context(levels).detach()
    eps = torch.randn(3, 2, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    *couplings, sigmoid = dequantizer.flow.bijectors  # the sigmoid on its own below: with
    assert isinstance(sigmoid, Sigmoid)  # randomized couplings it saturates in float64
    check_bijector(gf.Chain(*couplings), eps, context=context)


def test_sigmoid_passes_the_generic_checker() -> None:
    check_bijector(Sigmoid(), torch.randn(3, 2, 2, 2, dtype=torch.float64))


def test_variational_run_checkpoints_resumes_and_reports_both_bounds(tmp_path, capsys) -> None:
    from glowflow.cli import main
    from glowflow.store import load_model
    from glowflow.store.record import DEQUANTIZER_FILE
    from test_cli_train import TINY

    run = tmp_path / "run"
    argv = [
        "train",
        "--run-dir",
        str(run),
        *TINY,
        "--dequantization",
        "variational",
        "--dequantizer-steps",
        "2",
        "--dequantizer-hidden",
        "8",
        "--checkpoint-every",
        "2",
    ]
    assert main([*argv, "--max-steps", "2"]) == 0
    assert (run / "checkpoints" / "step-00000002" / DEQUANTIZER_FILE).is_file()
    assert main([*argv, "--max-steps", "4", "--resume", "auto"]) == 0
    loaded = load_model(run / "checkpoints" / "step-00000004")
    assert isinstance(loaded.dequantizer, VariationalDequantizer)
    capsys.readouterr()
    assert (
        main(["eval", str(run), "--json", "--draws", "2", "--iw-samples", "4", "--device", "cpu"])
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["dequantization"] == "variational" and report["iw_samples"] == 4
    assert math.isfinite(report["bpd"]) and math.isfinite(report["iw_bpd"])
