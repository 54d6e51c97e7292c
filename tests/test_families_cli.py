"""Every family through the command line: train, eval, sample, export, reload, ood, resume."""

import json

import pytest
import torch

import glowflow as gf
from glowflow.cli import main
from glowflow.families import FAMILIES

STEPS = ["--max-steps", "2", "--eval-every", "1", "--init-images", "16", "--no-progress"]
STEPS += ["--final-eval-draws", "1", "--checkpoint-every", "1", "--device", "cpu"]


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_family_trains_evaluates_samples_exports_reloads_and_scores(family, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--family", family, "--run-dir", str(run), *STEPS]) == 0
    assert json.loads((run / "result.json").read_text())["family"] == family
    capsys.readouterr()
    assert main(["eval", str(run), "--json", "--draws", "1", "--device", "cpu"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["bpd"] == pytest.approx(
        json.loads((run / "result.json").read_text())["test_bpd"], rel=0.05
    )
    picture = tmp_path / "samples.png"
    assert main(["sample", str(run), "-n", "4", "--out", str(picture), "--device", "cpu"]) == 0
    assert picture.is_file()
    exported = tmp_path / "exported"
    assert main(["export", str(run), str(exported)]) == 0
    trained, loaded = gf.load_model(run), gf.load_model(exported)
    assert loaded.family == family and loaded.config == trained.config
    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(0)) - 0.5
    with torch.no_grad():
        assert torch.equal(loaded.flow.log_prob(x), trained.flow.log_prob(x))
    report_dir = tmp_path / "ood"
    ood = ["ood", str(exported), "--in", "digits:test", "--out", "constant", "--limit", "20"]
    assert main([*ood, "--draws", "1", "--report", str(report_dir), "--device", "cpu"]) == 0
    assert (report_dir / "report.json").is_file()
    resumed = ["train", "--run-dir", str(run), "--resume", "auto", "--max-steps", "3"]
    assert main([*resumed, "--no-progress", "--device", "cpu"]) == 0
    assert json.loads((run / "result.json").read_text())["steps"] == 3


def test_train_says_what_it_trains_before_it_starts(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--family", "realnvp", "--run-dir", str(run), *STEPS]) == 0
    err = capsys.readouterr().err
    parameters = sum(p.numel() for p in gf.load_model(run).flow.parameters())
    assert f"realnvp with {parameters:,} parameters on cpu" in err
    assert "digits: train 1300, val 200, test 297 images" in err and str(run) in err
