"""``glowflow train --init-from MODEL``: a new run from another model's weights."""

import json

import pytest

from glowflow.cli import main
from glowflow.errors import ConfigError
from glowflow.store import load_model
from glowflow.training.init_from import first_mismatch
from glowflow.training.run_log import read_metrics
from test_train import single_thread  # noqa: F401  (autouse fixture)

FINE_TUNE = [
    "--init-from", "pretrained:digits", "--lr", "1e-4", "--warmup-steps", "1",
    "--max-steps", "40", "--eval-every", "10", "--final-eval-draws", "1", "--eval-draws", "1",
    "--no-progress", "--device", "cpu", "--sample-count", "4",
]  # fmt: skip


@pytest.fixture(scope="module")
def fine_tuned(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fine") / "digits"
    assert main(["train", "--run-dir", str(folder), *FINE_TUNE]) == 0
    return folder


def test_fine_tuning_starts_from_the_weights_and_validation_improves_or_stays(fine_tuned, capsys):
    rows = read_metrics(fine_tuned / "metrics.csv")
    start = rows[0]
    assert start["step"] == 0
    # the step-0 validation is the pretrained model itself: glowflow eval gives the same figure
    main(
        ["eval", "pretrained:digits", "--split", "val", "--draws", "1", "--json", "--device", "cpu"]
    )
    measured = json.loads(capsys.readouterr().out)["bpd"]
    assert measured == pytest.approx(start["val_bpd"], abs=1e-5)  # metrics.csv keeps 6 digits
    result = json.loads((fine_tuned / "result.json").read_text())
    assert result["best"]["val_bpd"] <= start["val_bpd"]
    later = [row["val_bpd"] for row in rows[1:] if row.get("val_bpd") is not None]
    assert later and max(later) < start["val_bpd"] + 0.05  # a lower lr stays near the start


def test_the_card_records_where_the_weights_started(fine_tuned, tmp_path):
    assert main(["export", str(fine_tuned), str(tmp_path / "out")]) == 0
    card = (tmp_path / "out" / "README.md").read_text()
    assert "weights_started_from: `pretrained:digits`" in card
    record = json.loads((tmp_path / "out" / "config.json").read_text())
    assert record["provenance"]["weights_started_from"] == "pretrained:digits"


def test_a_mismatched_architecture_is_refused_by_name(tmp_path, capsys):
    folder = tmp_path / "wide"
    code = main(["train", "--run-dir", str(folder), *FINE_TUNE, "--hidden-channels", "32"])
    assert code == 2
    error = capsys.readouterr().err
    assert "--init-from pretrained:digits has another architecture" in error
    assert "hidden_channels: 64 -> 32" in error
    assert not folder.exists()  # a failed start leaves no run folder


def test_another_family_or_a_missing_model_is_refused(tmp_path, capsys):
    code = main(["train", "--run-dir", str(tmp_path / "n"), *FINE_TUNE, "--family", "nice"])
    assert code == 2 and "is a glow model" in capsys.readouterr().err
    code = main(
        [
            "train",
            "--run-dir",
            str(tmp_path / "m"),
            *FINE_TUNE[2:],
            "--init-from",
            str(tmp_path / "none"),
        ]
    )
    assert code == 2 and "--init-from: no such folder" in capsys.readouterr().err


def test_first_mismatch_ignores_the_free_fields():
    config = load_model("pretrained:digits").config
    assert first_mismatch(config, config.replace(seed=7, coupling_dropout=0.2)) is None
    assert first_mismatch(config, config.replace(scale_fn="exp")) == "scale_fn: 'sigmoid' -> 'exp'"
    with pytest.raises(ConfigError):
        config.replace(hidden_channels=0)


def test_coupling_dropout_leaves_the_weights_layout_alone():
    """Dropout sits in the ReLU's place, so a model trained without it fine-tunes with it."""
    from glowflow.families import build
    from glowflow.families.glow import DIGITS

    plain = build(DIGITS.replace(output_shape=(1, 8, 8), seed=0))
    dropped = build(DIGITS.replace(output_shape=(1, 8, 8), seed=0, coupling_dropout=0.1))
    assert list(plain.state_dict()) == list(dropped.state_dict())
    dropped.load_state_dict(plain.state_dict())
