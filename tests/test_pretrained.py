"""Model folders: the format for every family, the one loader, export, the shipped digits
model, and the Hugging Face transport tested offline (a hand-made client cache and a fake
API)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import glowflow as gf
from glowflow.cli import main
from glowflow.families import FAMILIES
from glowflow.store import DataSpec, load_model, save_model
from glowflow.store.record import CARD_FILE, CONFIG_FILE, FILES, WEIGHTS_FILE
from runs import TINY


def tiny_flow(**options) -> gf.Flow:
    glow = gf.Glow(
        output_shape=(1, 8, 8),
        num_glow_blocks=2,
        num_steps_per_block=2,
        hidden_channels=8,
        seed=0,
        **options,
    )
    flow = gf.Flow(glow)
    flow.initialize(torch.rand(32, 1, 8, 8) - 0.5)
    return flow.eval()


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    flow = tiny_flow(learn_top_prior=True, exit_prior="gaussian", coupling_output="interleaved")
    data = DataSpec("digits", (1, 8, 8), 17, 10)
    folder = save_model(
        flow, tmp_path / "model", data, None, {"command": "made in a test"}, {"test_bpd": 2.5}
    )
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [CONFIG_FILE, WEIGHTS_FILE, CARD_FILE]
    )
    record = json.loads((folder / CONFIG_FILE).read_text())
    assert record["family"] == "glow" and record["dequantizer"] == {"kind": "uniform"}
    assert record["config"]["exit_prior"] == "gaussian" and record["data"]["n_bins"] == 17
    card = (folder / CARD_FILE).read_text()
    assert "2.5000" in card and "made in a test" in card and "library_name: glowflow" in card
    loaded = load_model(folder)
    x = torch.rand(4, 1, 8, 8) - 0.5
    assert torch.equal(loaded.flow.log_prob(x), flow.log_prob(x))
    assert loaded.data == data and loaded.config == flow.bijector.config
    assert torch.equal(gf.from_pretrained(folder).log_prob(x), flow.log_prob(x))


def test_corrupt_or_foreign_folders_are_errors_naming_the_file(tmp_path: Path, monkeypatch) -> None:
    folder = save_model(tiny_flow(), tmp_path / "m", DataSpec("digits", (1, 8, 8), 17))
    weights = folder / WEIGHTS_FILE
    with safe_open(str(weights), "pt") as handle:
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}
        metadata = handle.metadata()
    name = next(k for k in tensors if k.endswith("log_scale"))
    tensors[name] = tensors[name] + 1.0
    save_file(tensors, str(weights), metadata)
    with pytest.raises(RuntimeError, match=f"{weights}.*corrupt"):
        load_model(folder)
    (folder / CONFIG_FILE).write_text(json.dumps({"format": "something else"}))
    with pytest.raises(RuntimeError, match=str(folder / CONFIG_FILE)):
        load_model(folder)
    with pytest.raises(FileNotFoundError, match="no such folder"):
        load_model(tmp_path / "missing")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    with pytest.raises(FileNotFoundError, match="no such folder: runs/digitz"):
        load_model("runs/digitz")  # a mistyped local path is never sent to the Hub
    with pytest.raises(FileNotFoundError, match="pretrained:digits"):
        load_model("pretrained:nothing")


def test_the_shipped_digits_model() -> None:
    loaded = load_model("pretrained:digits")
    assert loaded.data.dataset == "digits" and loaded.data.n_bins == 17
    metrics = loaded.record["metrics"]
    assert metrics["bound"] == "importance-weighted bound, K=16" and metrics["test_bpd"] < 2.25
    card = (loaded.source / CARD_FILE).read_text()
    assert f"{metrics['test_bpd']:.4f}" in card and "--preset digits" in card
    assert loaded.record["data"]["val_size"] == 200  # trained beside the validation hold-out
    assert loaded.dequantizer.settings["kind"] == "variational"
    x = loaded.dataset("test")
    assert len(x) == 297
    assert loaded.flow.sample(2, temperature=0.7).shape == (2, 1, 8, 8)


def test_experiment_commands_take_a_pretrained_model(tmp_path: Path, capsys) -> None:
    out = tmp_path / "grid.png"
    assert (
        main(["sample", "pretrained:digits", "-n", "4", "--out", str(out), "--device", "cpu"]) == 0
    )
    assert out.is_file()
    capsys.readouterr()
    assert (
        main(
            [
                "reconstruct",
                "pretrained:digits",
                "-n",
                "8",
                "--out",
                str(tmp_path / "r.png"),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["max_abs_error"] < 1e-4 and report["levels_changed"] == 0
    assert (
        main(["eval", "pretrained:digits", "--json", "--iw-samples", "16", "--device", "cpu"]) == 0
    )
    report = json.loads(capsys.readouterr().out)
    metrics = load_model("pretrained:digits").record["metrics"]
    assert report["headline_bpd"] == pytest.approx(metrics["test_bpd"], abs=1e-4)  # the card's
    assert report["headline_bound"] == metrics["bound"]


def test_export_writes_the_runs_checkpoint(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert main(["train", "--preset", "digits", "--run-dir", str(run), *TINY]) == 0
    out = tmp_path / "exported"
    assert main(["export", str(run), str(out)]) == 0
    exported, trained = load_model(out), load_model(run)
    x = torch.rand(4, 1, 8, 8) - 0.5
    assert torch.equal(exported.flow.log_prob(x), trained.flow.log_prob(x))
    record = exported.record
    assert record["provenance"]["step"] == trained.step
    assert record["provenance"]["train_config"]["max_steps"] == 2
    card = (out / CARD_FILE).read_text()
    assert "glowflow train --family glow" in card and "--max-steps 2" in card
    assert "config.json" not in record["provenance"]["command"]  # nothing outside the folder
    checkpoint = run / "checkpoints" / "best"  # the files are copied, not rebuilt
    assert (out / WEIGHTS_FILE).read_bytes() == (checkpoint / WEIGHTS_FILE).read_bytes()
    result = json.loads((run / "result.json").read_text())
    if record["metrics"]:  # measured on the very checkpoint, at its own step
        assert record["metrics"]["test_bpd"] == result["best"]["test_bpd"]
        assert f"at step {result['best']['step']}" in record["metrics"]["measured"]


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_family_saves_and_loads_exactly(tmp_path: Path, family: str) -> None:
    config = (
        FAMILIES[family].template.replace(event_shape=(1, 8, 8), seed=0)
        if family != "glow"
        else FAMILIES[family].template.replace(output_shape=(1, 8, 8), seed=0)
    )
    flow = gf.families.build(config)
    flow.initialize(torch.rand(32, 1, 8, 8) - 0.5)
    flow.eval()
    folder = save_model(flow, tmp_path / family, DataSpec("digits", (1, 8, 8), 17, 10))
    loaded = load_model(folder)
    assert loaded.family == family and loaded.config == config
    x = torch.rand(3, 1, 8, 8) - 0.5
    assert torch.equal(loaded.flow.log_prob(x), flow.log_prob(x))


def test_a_float64_folder_loads_as_float64(tmp_path: Path) -> None:
    flow = tiny_flow().double()
    folder = save_model(flow, tmp_path / "f64", DataSpec("digits", (1, 8, 8), 17))
    loaded = load_model(folder)
    assert next(loaded.flow.parameters()).dtype == torch.float64
    x = torch.rand(3, 1, 8, 8, dtype=torch.float64) - 0.5
    assert torch.equal(loaded.flow.log_prob(x), flow.log_prob(x))


def test_a_glow_with_user_networks_is_refused_at_save_time(tmp_path: Path) -> None:
    def network(input_shape):
        return torch.nn.Conv2d(input_shape[0], 2 * input_shape[0], 3, padding=1)

    glow = gf.Glow((1, 8, 8), 2, 1, coupling_bijector_fn=network, hidden_channels=4)
    with pytest.raises(ValueError, match="user network functions"):
        save_model(gf.Flow(glow), tmp_path / "m", DataSpec("digits", (1, 8, 8), 17))
    assert not (tmp_path / "m").exists()


def test_hub_download_from_the_client_cache_offline(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("huggingface_hub")
    from glowflow.store.hub import download, push_to_hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    source = save_model(tiny_flow(), tmp_path / "m", DataSpec("digits", (1, 8, 8), 17))
    cache = tmp_path / "cache"
    revision = "0123456789abcdef0123456789abcdef01234567"
    snapshot = cache / "models--someone--tiny-glow" / "snapshots" / revision
    snapshot.mkdir(parents=True)
    for path in source.iterdir():
        (snapshot / path.name).write_bytes(path.read_bytes())
    (cache / "models--someone--tiny-glow" / "refs").mkdir()
    (cache / "models--someone--tiny-glow" / "refs" / "main").write_text(revision)
    folder = download("someone/tiny-glow", cache_dir=cache)
    assert folder == snapshot
    loaded = load_model("someone/tiny-glow", cache_dir=cache)
    x = torch.rand(2, 1, 8, 8) - 0.5
    assert torch.equal(loaded.flow.log_prob(x), load_model(source).flow.log_prob(x))
    with pytest.raises(FileNotFoundError, match="someone/absent"):
        load_model("someone/absent", cache_dir=cache)

    class FakeApi:
        def __init__(self) -> None:
            self.calls: list = []

        def create_repo(self, repo_id, **options):
            self.calls.append(("create_repo", repo_id, options))

        def upload_folder(self, **options):
            self.calls.append(("upload_folder", options))
            return "https://huggingface.co/someone/tiny-glow/commit/1"

    api = FakeApi()
    assert push_to_hub(source, "someone/tiny-glow", api=api).endswith("/commit/1")
    assert api.calls[1][1]["allow_patterns"] == list(FILES)
    with pytest.raises(FileNotFoundError):
        push_to_hub(tmp_path, "someone/tiny-glow", api=api)
