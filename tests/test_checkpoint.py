"""Checkpoints: atomic folders, exact round trips, no ActNorm re-initialization, clear errors."""

import pytest
import torch
from safetensors.torch import save_file

from glowflow.bijectors.actnorm import ActNorm
from glowflow.store import DataSpec, is_model_folder, read_record
from glowflow.store.loader import checkpoint_folder, list_checkpoints, load_weights, read_weights
from glowflow.store.record import WEIGHTS_FILE
from glowflow.training.checkpoint import (
    STATE_FILE,
    load_run,
    prune_checkpoints,
    read_state,
    save_checkpoint,
)
from glowflow.training.config import TrainConfig
from glowflow.training.model import build_flow
from test_train import single_thread  # noqa: F401  (autouse fixture)

INFO = DataSpec("digits", (1, 8, 8), 17, 10)


def tiny_config(**changes):
    return TrainConfig.from_dict(
        {"num_glow_blocks": 2, "num_steps_per_block": 2, "hidden_channels": 8, **changes}
    )


def initialized_flow(config):
    flow = build_flow(config, INFO)
    flow.initialize(torch.rand(32, 1, 8, 8) - 0.5)
    return flow


def test_round_trip_is_exact_and_never_reinitializes(tmp_path):
    config = tiny_config()
    flow = initialized_flow(config)
    folder = save_checkpoint(tmp_path, 7, flow, config, INFO, {"optimizer": {}})
    assert folder.name == "step-00000007"
    assert not [p for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith(".")]

    assert is_model_folder(folder)  # a checkpoint is a model folder plus the training state
    assert read_record(folder)["family"] == "glow"
    loaded, run_config = load_run(tmp_path)
    assert (loaded.step, run_config, loaded.data, loaded.ema) == (7, config, INFO, False)
    assert loaded.config == flow.config
    assert not loaded.flow.training
    assert loaded.output_dir == tmp_path and loaded.source == folder
    for key, value in flow.state_dict().items():
        assert torch.equal(value, loaded.flow.state_dict()[key]), key
    actnorms = [m for m in loaded.flow.modules() if isinstance(m, ActNorm)]
    assert actnorms and all(bool(m.initialized) for m in actnorms)

    # A forward pass on very different data must leave the loaded ActNorm parameters alone.
    before = {k: v.clone() for k, v in loaded.flow.state_dict().items()}
    loaded.flow.train()
    loaded.flow.log_prob(torch.rand(16, 1, 8, 8) * 0.1 + 0.3)
    for key, value in loaded.flow.state_dict().items():
        assert torch.equal(value, before[key]), key

    x = torch.rand(4, 1, 8, 8) - 0.5
    flow.eval()
    torch.testing.assert_close(loaded.flow.log_prob(x), flow.log_prob(x))


def test_state_and_paths(tmp_path):
    config = tiny_config()
    flow = initialized_flow(config)
    for step in (0, 5, 10):
        save_checkpoint(tmp_path, step, flow, config, INFO, {"skipped": step})
    (tmp_path / "checkpoints" / ".tmp-step-00000015-1").mkdir()  # a killed write: ignored
    assert [p.name for p in list_checkpoints(tmp_path)] == [
        "step-00000000",
        "step-00000005",
        "step-00000010",
    ]
    newest = tmp_path / "checkpoints" / "step-00000010"
    assert checkpoint_folder(tmp_path) == newest
    assert checkpoint_folder(newest / WEIGHTS_FILE) == newest
    assert read_state(newest)["skipped"] == 10 and read_state(newest)["step"] == 10
    prune_checkpoints(tmp_path, keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-00000005", "step-00000010"]
    with pytest.raises(FileNotFoundError, match="neither a model folder"):
        checkpoint_folder(tmp_path / "checkpoints" / ".tmp-step-00000015-1")


def test_ema_weights_preferred_when_present(tmp_path):
    config = tiny_config(ema_decay=0.9)
    flow = initialized_flow(config)
    ema = initialized_flow(config)
    with torch.no_grad():
        for p in ema.parameters():
            p.add_(1.0)
    save_checkpoint(tmp_path, 1, flow, config, INFO, {}, ema_flow=ema)
    assert load_run(tmp_path)[0].ema
    assert torch.equal(next(load_run(tmp_path)[0].flow.parameters()), next(ema.parameters()))
    assert torch.equal(
        next(load_run(tmp_path, ema=False)[0].flow.parameters()), next(flow.parameters())
    )


def test_truncated_and_foreign_files_are_named(tmp_path):
    config = tiny_config()
    folder = save_checkpoint(tmp_path, 1, initialized_flow(config), config, INFO, {})
    weights = folder / WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(RuntimeError, match=str(weights)):
        load_run(tmp_path)

    save_file({"w": torch.zeros(3)}, str(weights))  # a safetensors file, but not ours
    with pytest.raises(RuntimeError, match="not a glowflow weights"):
        load_run(folder)

    state = folder / STATE_FILE
    state.write_bytes(state.read_bytes()[:50])
    with pytest.raises(RuntimeError, match=str(state)):
        read_state(folder)


def test_weights_of_another_architecture_are_rejected(tmp_path):
    config = tiny_config()
    folder = save_checkpoint(tmp_path, 1, initialized_flow(config), config, INFO, {})
    other = initialized_flow(tiny_config(hidden_channels=4))
    with pytest.raises(RuntimeError, match="does not fit this model"):
        load_weights(other, folder / WEIGHTS_FILE, read_weights(folder / WEIGHTS_FILE)[0])
