"""The command line prints a user's mistake (a GlowflowError) as one line with exit status 2,
and lets anything else, a bug, keep its traceback."""

import pytest

import glowflow.cli.eval as eval_command
from glowflow.cli import main
from glowflow.errors import ConfigError, GlowflowError, MissingFileError, ModelFileError


@pytest.mark.parametrize(
    "kind, builtin",
    [
        (ConfigError, ValueError),
        (ModelFileError, RuntimeError),
        (MissingFileError, FileNotFoundError),
    ],
)
def test_each_kind_is_a_glowflow_error_and_the_builtin_a_caller_expects(kind, builtin):
    assert issubclass(kind, GlowflowError) and issubclass(kind, builtin)


def test_a_user_mistake_is_one_line(monkeypatch, capsys):
    def mistaken(args):
        raise ConfigError("--draws must be >= 1")

    monkeypatch.setattr(eval_command, "run", mistaken)
    assert main(["eval", "pretrained:digits"]) == 2
    assert capsys.readouterr().err == "glowflow eval: error: --draws must be >= 1\n"


def test_a_bug_keeps_its_traceback(monkeypatch):
    def buggy(args):
        raise RuntimeError("shape mismatch deep inside torch")

    monkeypatch.setattr(eval_command, "run", buggy)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        main(["eval", "pretrained:digits"])


def test_a_missing_model_is_one_line_naming_it(capsys, tmp_path):
    assert main(["eval", str(tmp_path / "nothing")]) == 2
    assert capsys.readouterr().err.startswith(f"glowflow eval: error: no such folder: {tmp_path}")


def test_a_failed_start_leaves_no_run_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "runs" / "c"
    assert main(["train", "--preset", "cifar10", "--run-dir", str(run)]) == 2
    assert "CIFAR-10 not found" in capsys.readouterr().err
    assert not run.exists()


def test_a_failed_download_is_one_line(tmp_path, capsys, monkeypatch):
    import urllib.error

    import torchvision.datasets

    def offline(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    run = tmp_path / "runs" / "d"
    assert main(["train", "--preset", "cifar10", "--download", "--run-dir", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("glowflow train: error: cannot download CIFAR10 into data: ")
    assert "Name or service not known" in err and err.count("\n") == 1
    assert not run.exists()
