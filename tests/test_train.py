"""The training loop: deterministic resume, the NaN guard, batches, evaluation."""

import math

import pytest
import torch

import glowflow.training.step as step_module
from glowflow.errors import GlowflowError
from glowflow.store import load_model
from glowflow.training.batches import StepBatches
from glowflow.training.config import TrainConfig
from glowflow.training.ema import EMA
from glowflow.training.evaluate import summarize
from glowflow.training.run_log import read_metrics
from glowflow.training.trainer import Trainer, train

TIMING_COLUMNS = ("images_per_s", "elapsed_s")


@pytest.fixture(autouse=True)
def single_thread():
    """Tiny models run fastest on one thread, and far faster than two on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny(run_dir, **changes):
    """A model and schedule small enough for a step in milliseconds."""
    values = dict(
        run_dir=str(run_dir),
        num_glow_blocks=2,
        num_steps_per_block=1,
        hidden_channels=8,
        batch_size=16,
        init_images=32,
        max_steps=6,
        warmup_steps=2,
        log_every=1,
        eval_every=3,
        eval_batch_size=300,
        final_eval_draws=1,
        sample_every=100,
        sample_count=4,
        checkpoint_every=3,
        validations=0,  # the step cadences alone, so each test places its checkpoints
        progress=False,
        device="cpu",
    )
    values.update(changes)
    return TrainConfig.from_dict(values)


def comparable(rows):
    return [{k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in rows]


def test_killed_run_resumes_to_the_same_metrics(tmp_path, monkeypatch):
    reference = train(tiny(tmp_path / "a", deterministic=True, ema_decay=0.5))

    original_step = Trainer.train_step

    def killed_at_step_4(self, levels, labels):
        if self.state.step == 4:  # after checkpoint 3 and one more logged step
            raise KeyboardInterrupt
        return original_step(self, levels, labels)

    monkeypatch.setattr(Trainer, "train_step", killed_at_step_4)
    config = tiny(tmp_path / "b", deterministic=True, ema_decay=0.5)
    with pytest.raises(KeyboardInterrupt):
        train(config)
    assert [r["step"] for r in read_metrics(tmp_path / "b" / "metrics.csv")] == [1, 2, 3, 4]
    monkeypatch.setattr(Trainer, "train_step", original_step)

    with pytest.raises(GlowflowError, match="--resume auto"):
        train(config)  # never a silent fresh start over an existing run
    resumed = train(config, resume="auto")
    assert comparable(resumed.metrics) == comparable(reference.metrics)
    assert [r["step"] for r in resumed.metrics] == [1, 2, 3, 4, 5, 6]
    assert resumed.test_bpd == reference.test_bpd
    assert not any(torch.isnan(torch.tensor(r["train_bpd"])) for r in resumed.metrics)


def test_resume_auto_without_checkpoint_starts_fresh(tmp_path):
    result = train(tiny(tmp_path, max_steps=2), resume="auto")
    assert result.steps == 2 and math.isfinite(result.test_bpd)


def test_nan_guard_skips_counts_restores_and_lowers_lr(tmp_path, monkeypatch, capsys):
    real = step_module.bits_per_dim
    calls = {"n": 0}

    def flaky(log_prob, num_dims, n_bins):
        calls["n"] += 1
        if calls["n"] == 4:  # non-finite loss
            log_prob = log_prob * float("nan")
        if calls["n"] == 5:  # finite loss, non-finite gradient
            log_prob = log_prob.clone()
            log_prob.register_hook(lambda grad: torch.full_like(grad, float("nan")))
        return real(log_prob, num_dims, n_bins)

    monkeypatch.setattr(step_module, "bits_per_dim", flaky)
    result = train(tiny(tmp_path, nan_patience=2, nan_lr_factor=0.5, lr_schedule="constant"))
    rows = {int(r["step"]): r for r in result.metrics}
    assert [rows[s]["skipped_steps"] for s in range(1, 7)] == [0, 0, 0, 1, 2, 2]
    assert rows[4]["train_bpd"] is None  # no finite step in that row
    assert rows[3]["lr"] == pytest.approx(1e-3) and rows[6]["lr"] == pytest.approx(5e-4)
    err = capsys.readouterr().err
    assert "step skipped" in err and "restored" in err and "step-00000003" in err
    assert all(torch.isfinite(p).all() for p in load_model(result.checkpoint).flow.parameters())


def test_step_batches_restart_mid_epoch_and_shard():
    data = list(range(50))
    full = StepBatches(data, 8, seed=3)
    assert full.steps_per_epoch == 6
    stream = iter(full)
    first = [next(stream) for _ in range(14)]
    restarted = iter(StepBatches(data, 8, seed=3, start_step=9))
    assert [next(restarted) for _ in range(5)] == first[9:]
    assert len(set(sum(first[:6], []))) == 48  # one epoch: distinct images
    shards = [next(iter(StepBatches(data, 8, seed=3, rank=r, world_size=2))) for r in (0, 1)]
    assert not set(shards[0]) & set(shards[1])
    with pytest.raises(ValueError, match="batch_size"):
        StepBatches(data, 64, seed=0)


def test_summarize_mean_and_standard_error():
    values = torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64)
    sums = torch.stack([values.sum(), values.pow(2).sum(), torch.tensor(3.0, dtype=torch.float64)])
    result = summarize(sums, draws=2)
    assert result.bpd == pytest.approx(7 / 3)
    assert result.stderr == pytest.approx(values.std().item() / math.sqrt(3))
    assert (result.num_images, result.draws) == (3, 2)


def test_ema_warms_up_then_tracks_with_its_decay():
    model = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.zeros_(model.weight)
    ema = EMA(model, decay=0.5)
    model.weight.data.fill_(1.0)
    ema.update(model, 0)  # d_0 = min(0.5, 1/10) = 0.1
    assert ema.module.weight.item() == pytest.approx(0.9)
    ema.update(model, 100)  # d = 0.5
    assert ema.module.weight.item() == pytest.approx(0.95)
    assert not ema.module.training and not ema.module.weight.requires_grad
