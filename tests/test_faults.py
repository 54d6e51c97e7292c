"""The trainer under faults and hostile input (issue 13, items 2-10): every probe is a test that
asserts the clear error or the correct result.

A killed run is resumed with ``--resume auto`` and compared with one uninterrupted
``--deterministic`` run of the same settings (:func:`reference`): every metrics row (timing
columns aside), every tensor of every checkpoint, the result's test bits/dim. Real kills run the
trainer in a child process (:data:`DRIVER`) that SIGKILLs itself in the middle of a write.
"""

from __future__ import annotations

import errno
import itertools
import json
import math
import os
import pathlib
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import glowflow as gf
from glowflow.cli import main
from glowflow.store.loader import read_weights
from glowflow.store.signed_weights import tensors_sha256
from glowflow.training import keeper as keeper_module
from glowflow.training.run_log import read_metrics
from glowflow.training.trainer import Trainer
from glowflow.validation import first_non_finite
from runs import TINY_TRAINING
from test_train import single_thread  # noqa: F401  (autouse fixture)

TIMING_COLUMNS = ("images_per_s", "elapsed_s")
TIMING_RESULT = ("wall_time_s", "machine", "threads", "checkpoint", "torch", "device")

TINY = [*TINY_TRAINING, "--sample-every", "1000", "--threads", "1"]
RUN = [
    *TINY,
    "--deterministic",
    "--max-steps",
    "8",
    "--checkpoint-every",
    "3",
    "--log-every",
    "2",
    "--eval-every",
    "4",
    "--ema-decay",
    "0.5",
    "--validations",
    "0",
    "--lr",
    "1e-3",
]
"""The run every kill is compared against: checkpoints (3, 6, 8) fall inside logging windows
(rows at 2, 4, 6, 8), and the EMA is part of the state; the digits preset's best recipe
(coupling dropout, variational dequantization) otherwise, at the paper's lr, with the step
cadences alone."""

FULL_DISK = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


# ----------------------------------------------------------------------------- helpers
def train_cli(run_dir, *extra):
    return main(["train", "--run-dir", str(run_dir), *RUN, *extra])


def counted_train(argv):
    """Run ``glowflow train`` with ``argv`` (its exit status must be 0) and count the files its
    checkpoints write: a killed run's ``{"target": "checkpoint", "at": N}`` falls inside one
    of them for ``N`` up to that count."""
    real = pathlib.Path.write_bytes
    files = []

    def write_bytes(path, data):
        if path.parent.name.startswith(".tmp-"):
            files.append(path)
        return real(path, data)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pathlib.Path, "write_bytes", write_bytes)
        assert main(["train", *argv]) == 0
    return len(files)


def one_error_line(err, command="train"):
    """The single ``glowflow <command>: error:`` line of a failed command (no traceback)."""
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith(f"glowflow {command}: error: ")]
    assert len(errors) == 1, err
    assert err.rstrip().splitlines()[-1] == errors[0]
    return errors[0]


def comparable(rows):
    return [{k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in rows]


def checkpoint_folders(run_dir):
    return sorted(p for p in (run_dir / "checkpoints").iterdir())


def weights_files(folder):
    return sorted(folder.glob("*.safetensors"))


def assert_no_temporaries(run_dir):
    leftovers = [p.name for p in checkpoint_folders(run_dir) if p.name.startswith(".")]
    leftovers += [p.name for p in run_dir.iterdir() if ".tmp-" in p.name]
    assert not leftovers


def assert_same_run(run_dir, reference):
    """``run_dir`` ends in the state of the uninterrupted ``reference``: every metrics row
    (timing aside), result.json (timing and paths aside), the same checkpoint folders with
    equal tensors, the newest one's optimizer state too, and no temporaries."""
    rows, expected = (read_metrics(folder / "metrics.csv") for folder in (run_dir, reference))
    assert [r["step"] for r in rows] == [r["step"] for r in expected]
    assert comparable(rows) == comparable(expected)
    results = [json.loads((folder / "result.json").read_text()) for folder in (run_dir, reference)]
    for result in results:
        for key in TIMING_RESULT:
            result.pop(key, None)
        for entry in ("best", "last"):  # per-checkpoint scores, with the checkpoint's path
            if isinstance(result.get(entry), dict):
                result[entry].pop("checkpoint", None)
    assert results[0] == results[1]
    names = [p.name for p in checkpoint_folders(run_dir)]
    assert names == [p.name for p in checkpoint_folders(reference)]
    for name in names:
        for path in weights_files(reference / "checkpoints" / name):
            mine, _ = read_weights(run_dir / "checkpoints" / name / path.name)
            theirs, _ = read_weights(path)
            assert mine.keys() == theirs.keys()
            for key in theirs:
                assert torch.equal(mine[key], theirs[key]), f"{name}/{path.name}: {key}"
    newest = [name for name in names if name.startswith("step-")][-1]
    states = [
        torch.load(folder / "checkpoints" / newest / "state.pt", weights_only=True)
        for folder in (run_dir, reference)
    ]
    optimizers = [state["optimizer"]["state"] for state in states]
    assert optimizers[0].keys() == optimizers[1].keys()
    for key in optimizers[1]:
        for name, value in optimizers[1][key].items():
            assert torch.equal(optimizers[0][key][name], value), f"optimizer {key}.{name}"
    assert_no_temporaries(run_dir)


def assert_finite_checkpoint(folder):
    """Every weights file of ``folder`` verifies and is finite, and so is its state.pt."""
    for path in weights_files(folder):
        tensors, _ = read_weights(path)
        assert first_non_finite(tensors, path.name) is None, path
    state = torch.load(folder / "state.pt", weights_only=True)
    assert first_non_finite(state, "state.pt") is None, folder


def strict_json(path):
    """A JSON file with no NaN or Infinity in it."""

    def refuse(constant):
        raise AssertionError(f"{path} holds {constant}")

    return json.loads(path.read_text(), parse_constant=refuse)


def dead_pid():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


class FullFile:
    """A file on a full disk: a write stores half of its data, then fails with ENOSPC."""

    def __init__(self, handle):
        self.handle = handle

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.close()

    def write(self, data):
        self.handle.write(data[: len(data) // 2])
        self.handle.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self.handle, name)


def full_disk_for(monkeypatch, wanted):
    """Make writes through ``open`` fail with ENOSPC for files where ``wanted(name, mode)``."""
    real = open

    def opener(file, mode="r", *args, **kwargs):
        handle = real(file, mode, *args, **kwargs)
        if (
            isinstance(file, (str, os.PathLike))
            and set(mode) & set("wax+")
            and wanted(pathlib.Path(file).name, mode)
        ):
            return FullFile(handle)
        return handle

    monkeypatch.setattr("builtins.open", opener)


def kill_at_step(monkeypatch, step):
    """Make the trainer raise KeyboardInterrupt (a kill) when it starts step ``step + 1``."""
    real = Trainer.train_step

    def train_step(self, levels, labels):
        if self.state.step == step:
            raise KeyboardInterrupt
        return real(self, levels, labels)

    monkeypatch.setattr(Trainer, "train_step", train_step)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, children):
    """The uninterrupted deterministic run of :data:`RUN` (read only). The child processes
    start first, so that they run beside this module's tests."""
    folder = tmp_path_factory.mktemp("reference") / "run"
    assert train_cli(folder) == 0
    return folder


def copy_of(reference, tmp_path):
    target = tmp_path / "run"
    shutil.copytree(reference, target)
    (target / ".lock").unlink(missing_ok=True)
    return target


# ------------------------------------------------------------------------------ driver
DRIVER = r'''
"""Run ``glowflow`` with a fault: SIGKILL in the middle of the Nth write of one kind, or a
pause (holding the run folder) at a step until a file appears."""
import json, os, pathlib, signal, sys, time

spec = json.loads(sys.argv[1])
import builtins
import torch
from glowflow.cli import main
from glowflow.training.trainer import Trainer

calls = {"n": 0}


def nth():
    calls["n"] += 1
    return calls["n"] == spec["at"]


def die():
    os.kill(os.getpid(), signal.SIGKILL)


target = spec["target"]
if target == "checkpoint":  # a weights or state file of a checkpoint folder
    real_write_bytes = pathlib.Path.write_bytes

    def write_bytes(path, data):
        if path.parent.name.startswith(".tmp-") and nth():
            real_write_bytes(path, data[: len(data) // 2])
            die()
        return real_write_bytes(path, data)

    pathlib.Path.write_bytes = write_bytes
elif target in ("metrics", "result", "atomic"):  # a metrics.csv row; an atomic rewrite's
    # temporary: of result.json, or of spec["file"] (config.json, metrics.csv)
    real_open = builtins.open

    class Torn:
        def __init__(self, handle):
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def write(self, data):
            self.handle.write(data[: len(data) // 2])
            self.handle.flush()
            os.fsync(self.handle.fileno())
            die()

        def __getattr__(self, name):
            return getattr(self.handle, name)

    def opener(file, mode="r", *args, **kwargs):
        handle = real_open(file, mode, *args, **kwargs)
        name = pathlib.Path(file).name if isinstance(file, (str, os.PathLike)) else ""
        if target == "metrics":
            hit = name == "metrics.csv" and "a" in mode
        else:
            prefix = "." + spec.get("file", "result.json") + ".tmp-"
            hit = name.startswith(prefix) and "w" in mode
        if hit and nth():
            return Torn(handle)
        return handle

    builtins.open = opener
elif target == "hold":
    real_step = Trainer.train_step

    def train_step(self, levels, labels):
        if self.state.step == spec["at"]:
            pathlib.Path(spec["ready"]).touch()
            deadline = time.time() + 120
            while not os.path.exists(spec["go"]) and time.time() < deadline:
                time.sleep(0.02)
        return real_step(self, levels, labels)

    Trainer.train_step = train_step
sys.exit(main(spec["argv"]))
'''


_DRIVERS = itertools.count()


def start_driver(folder, spec):
    """Start :data:`DRIVER` with ``spec`` in a child process (stderr to a file in ``folder``)."""
    script = folder / "driver.py"
    if not script.exists():
        script.write_text(DRIVER)
    log = open(folder / f"driver-{spec['target']}-{spec['at']}-{next(_DRIVERS)}.err", "w+")
    child = subprocess.Popen(
        [sys.executable, str(script), json.dumps(spec)],
        stdout=subprocess.DEVNULL,
        stderr=log,
        text=True,
    )
    child.log = log
    return child


def driver_stderr(child):
    child.log.seek(0)
    return child.log.read()


KILLS = [("checkpoint", 2), ("checkpoint", 5), ("metrics", 4), ("result", 1)]
"""(write, Nth such write) at which a child SIGKILLs itself: inside the first checkpoint
(nothing to resume) and inside one in a logging window; the last metrics row; result.json.
test_faults_slow.py tries every write."""


@pytest.fixture(scope="module")
def children(tmp_path_factory):
    """Child trainers of :data:`RUN`, all started at once, beside the tests in this process:
    one per :data:`KILLS` case, ``{case: (run folder, child)}``, and ``"hold"``: a trainer
    that pauses at step 5 until its ``go`` file exists, ``(run folder, child, ready, go)``."""
    root = tmp_path_factory.mktemp("children")
    started = {}
    for target, at in KILLS:
        run_dir = root / f"{target}-{at}"
        argv = ["train", "--run-dir", str(run_dir), *RUN]
        started[target, at] = run_dir, start_driver(root, dict(target=target, at=at, argv=argv))
    run_dir, ready, go = root / "hold", root / "ready", root / "go"
    argv = ["train", "--run-dir", str(run_dir), *RUN]
    child = start_driver(root, dict(target="hold", at=5, ready=str(ready), go=str(go), argv=argv))
    started["hold"] = run_dir, child, ready, go
    yield started
    go.touch()
    for _, child, *_ in started.values():
        try:
            child.wait(timeout=120)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        child.log.close()


# ------------------------------------------------- item 2: divergence, known-good checkpoints
DIVERGE = [
    "--max-steps",
    "60",
    "--checkpoint-every",
    "10",
    "--eval-every",
    "20",
    "--log-every",
    "5",
    "--warmup-steps",
    "1",
    "--keep-checkpoints",
    "1000",
]


def diverging_run(run_dir, monkeypatch, capsys, *extra):
    """Train with a learning rate that diverges, checking every checkpoint the moment it is
    written (the best one is rewritten in place); returns (exit status, error text)."""
    real = keeper_module.save_checkpoint
    written = []

    def save_and_check(*args, **kwargs):
        folder = real(*args, **kwargs)
        assert_finite_checkpoint(folder)
        written.append(folder)
        return folder

    monkeypatch.setattr(keeper_module, "save_checkpoint", save_and_check)
    status = main(["train", "--run-dir", str(run_dir), *TINY, *DIVERGE, *extra])
    monkeypatch.undo()
    assert written  # the initialization at least
    for folder in checkpoint_folders(run_dir):
        assert not folder.name.startswith(".")
        assert_finite_checkpoint(folder)
    return status, capsys.readouterr().err


@pytest.mark.parametrize(
    "extra",
    [
        ["--lr", "10"],  # recovers after restores
        ["--lr", "1e3"],  # restore after restore
        ["--lr", "1e3", "--nan-max-restores", "1", "--checkpoint-every", "50"],  # gives up
    ],
    ids=["lr10", "lr1e3", "lr1e3-gives-up"],
)
def test_divergence_never_checkpoints_bad_state_nor_reports_nan(
    tmp_path, monkeypatch, capsys, extra
):
    run_dir = tmp_path / "run"
    status, err = diverging_run(run_dir, monkeypatch, capsys, *extra)
    assert "Traceback" not in err
    if status == 0:
        result = strict_json(run_dir / "result.json")
        assert math.isfinite(result["test_bpd"])
        assert all(
            math.isfinite(r["train_bpd"])
            for r in read_metrics(run_dir / "metrics.csv")
            if r["train_bpd"] is not None
        )
    else:
        assert status == 2
        line = one_error_line(err)
        assert "diverged" in line and "--lr" in line, line
        assert not (run_dir / "result.json").exists()
    if "--nan-max-restores" in extra:
        assert status == 2 and "restores of" in err


def test_recovery_that_keeps_failing_stops_with_a_clear_error(tmp_path, monkeypatch, capsys):
    run_dir = tmp_path / "run"
    status, err = diverging_run(run_dir, monkeypatch, capsys, "--lr", "1e3")
    if status == 0:
        result = strict_json(run_dir / "result.json")
        assert result["skipped_steps"] <= result["steps"] // 2, (
            f"exit 0 after skipping {result['skipped_steps']} of {result['steps']} steps"
        )
    assert status == 2 and "--lr" in one_error_line(err)


# -------------------------------------------------- items 3 and 4: resume gives every row
@pytest.mark.parametrize(
    "kills", [[2], [5], [7], [4, 7]], ids=lambda kills: "kill-at-" + "-".join(map(str, kills))
)
def test_resume_after_kills_repeats_the_uninterrupted_run(tmp_path, monkeypatch, reference, kills):
    """Killed after step k (checkpoints at 0, 3, 6; rows at 2, 4, 6, 8: a resume from 3 or 6
    continues a half-full logging window), then resumed: the same rows, weights and result."""
    run_dir = tmp_path / "run"
    for index, k in enumerate(kills):
        kill_at_step(monkeypatch, k)
        with pytest.raises(KeyboardInterrupt):
            train_cli(run_dir, *(["--resume", "auto"] if index else []))
        monkeypatch.undo()
        assert max(r["step"] for r in read_metrics(run_dir / "metrics.csv")) == k - k % 2
    assert train_cli(run_dir, "--resume", "auto") == 0
    assert_same_run(run_dir, reference)


# ------------------------------------------------ item 5: resume keeps the run's settings
def test_resume_auto_keeps_the_runs_settings(tmp_path, monkeypatch, capsys, reference):
    run_dir = tmp_path / "run"
    kill_at_step(monkeypatch, 5)
    with pytest.raises(KeyboardInterrupt):
        train_cli(run_dir)
    monkeypatch.undo()
    # The README's command, none of the run's flags: --deterministic and max_steps 8 stay.
    assert main(["train", "--run-dir", str(run_dir), "--resume", "auto", "--no-progress"]) == 0
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["deterministic"] is True and saved["max_steps"] == 8
    assert_same_run(run_dir, reference)
    capsys.readouterr()

    conflicts = [
        (["--lr", "0.01"], "lr=0.01 (the run has 0.001)"),
        (["--dataset", "mnist"], "dataset='mnist' (the run has 'digits')"),
        (["--hidden-channels", "16"], "hidden_channels=16 (the run has 8)"),
        (["--no-deterministic"], "deterministic=False (the run has True)"),
        (["--preset", "cifar10"], "dataset='cifar10' (the run has 'digits')"),
    ]
    for flags, named in conflicts:
        assert main(["train", "--run-dir", str(run_dir), "--resume", "auto", *flags]) == 2
        line = one_error_line(capsys.readouterr().err)
        assert named in line and "max_steps" in line and "may change" in line, line
    assert_same_run(run_dir, reference)  # the refused resumes changed nothing

    # max_steps may change; the run's own values given again are no conflict.
    assert train_cli(run_dir, "--resume", "auto", "--max-steps", "10") == 0
    result = json.loads((run_dir / "result.json").read_text())
    assert result["steps"] == 10 and math.isfinite(result["test_bpd"])
    assert json.loads((run_dir / "config.json").read_text())["max_steps"] == 10
    assert [r["step"] for r in read_metrics(run_dir / "metrics.csv")] == [2, 4, 6, 8, 10]


def test_trainer_resume_with_other_settings_names_the_conflict(tmp_path, reference):
    from glowflow.training.trainer import train
    from test_train import tiny

    run_dir = copy_of(reference, tmp_path)
    with pytest.raises(ValueError, match=r"trained with other settings \(.*lr: 0\.001 -> 0\.01"):
        train(tiny(run_dir, lr=0.01, max_steps=8, deterministic=True), resume="auto")


# ----------------------------------------------------- item 6: one trainer per run folder
def test_second_trainer_on_a_running_folder_is_refused(capsys, children, reference):
    run_dir, child, ready, go = children["hold"]
    try:
        deadline = time.time() + 120
        while not ready.exists():  # the child holds the folder, paused inside step 6
            assert child.poll() is None, driver_stderr(child)
            assert time.time() < deadline
            time.sleep(0.05)
        for resume in ([], ["--resume", "auto"]):
            assert train_cli(run_dir, *resume) == 2
            line = one_error_line(capsys.readouterr().err)
            assert line.endswith(
                f"run folder {run_dir} is in use by another glowflow process "
                f"(pid {child.pid} on {socket.gethostname()}); wait for it or "
                f"pick another --run-dir"
            ), line
    finally:
        go.touch()
        child.wait(timeout=120)
    assert child.returncode == 0, driver_stderr(child)
    assert_same_run(run_dir, reference)  # every row once


# -------------------------------------- item 7: leftovers of killed writes, a full disk
def test_stale_temporaries_are_removed_and_the_run_resumes(
    tmp_path, monkeypatch, capsys, reference
):
    run_dir = tmp_path / "run"
    kill_at_step(monkeypatch, 7)
    with pytest.raises(KeyboardInterrupt):
        train_cli(run_dir)
    monkeypatch.undo()
    dead = dead_pid()
    stale = [
        run_dir / "checkpoints" / f".tmp-step-00000008-{dead}",
        run_dir / "checkpoints" / f".old-step-00000006-{dead}",
    ]
    for folder in stale:
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(b"half a checkpoint")
    (run_dir / f".metrics.csv.tmp-{dead}").write_text("step,train_bpd\n2,")
    capsys.readouterr()
    assert train_cli(run_dir, "--resume", "auto") == 0
    err = capsys.readouterr().err
    for path in [*stale, run_dir / f".metrics.csv.tmp-{dead}"]:
        assert f"removed {path}" in err
        assert not path.exists()
    assert_same_run(run_dir, reference)


def test_full_disk_during_a_checkpoint_is_one_line_and_resume_works(
    tmp_path, monkeypatch, capsys, reference
):
    run_dir = tmp_path / "run"
    real = pathlib.Path.write_bytes

    def write_bytes(path, data):
        if path.parent.name.startswith(".tmp-step-00000006-"):
            real(path, data[: len(data) // 2])
            raise FULL_DISK
        return real(path, data)

    monkeypatch.setattr(pathlib.Path, "write_bytes", write_bytes)
    assert train_cli(run_dir) == 2
    monkeypatch.undo()
    line = one_error_line(capsys.readouterr().err)
    assert line == (
        f"glowflow train: error: cannot write checkpoint {run_dir}/checkpoints/"
        f"step-00000006: No space left on device (errno 28); free space and resume "
        f"with --resume auto"
    )
    assert_no_temporaries(run_dir)
    assert not (run_dir / "result.json").exists()
    assert train_cli(run_dir, "--resume", "auto") == 0
    assert_same_run(run_dir, reference)


@pytest.mark.parametrize(
    "victim", ["metrics.csv-append", "metrics.csv-rewrite", "result.json", "config.json"]
)
def test_full_disk_outside_checkpoints_is_one_line_and_resume_works(
    tmp_path, monkeypatch, capsys, reference, victim
):
    run_dir = tmp_path / "run"
    if victim == "metrics.csv-rewrite":  # the rewrite a resume does
        kill_at_step(monkeypatch, 5)
        with pytest.raises(KeyboardInterrupt):
            train_cli(run_dir)
        monkeypatch.undo()
    name = victim.split("-")[0]
    if victim == "metrics.csv-append":
        full_disk_for(monkeypatch, lambda file, mode: file == name and "a" in mode)
    else:  # the temporary of an atomic rewrite
        full_disk_for(monkeypatch, lambda file, mode: file.startswith(f".{name}.tmp-"))
    try:
        status = train_cli(run_dir, *(["--resume", "auto"] if "rewrite" in victim else []))
    finally:
        monkeypatch.undo()
    assert status == 2
    line = one_error_line(capsys.readouterr().err)
    assert str(run_dir) in line and name in line and "No space left on device" in line, line
    assert train_cli(run_dir, "--resume", "auto") == 0
    assert_same_run(run_dir, reference)


# ---------------------------------------- item 8: settings that would give silent garbage
@pytest.mark.parametrize(
    "flags, named",
    [
        (["--init-images", "1"], "init_images must be >= 16"),
        (["--lr", "inf"], "lr must be a finite number, got inf"),
        (["--lr", "nan"], "lr must be a finite number, got nan"),
        (["--lr", "0"], "lr must be > 0, got 0.0"),
        (["--lr", "-1"], "lr must be > 0, got -1.0"),
        (["--max-grad-norm", "nan"], "max_grad_norm must be a finite number, got nan"),
        (["--sample-temperatures", "0.7", "nan"], "sample_temperatures must be a finite number"),
        (["--sample-temperatures", "-1"], "sample_temperatures must be >= 0"),
        (["--nan-lr-factor", "nan"], "nan_lr_factor must be a finite number"),
        (["--ema-decay", "inf"], "ema_decay must be a finite number"),
        (["--class-loss-weight", "nan"], "class_loss_weight must be a finite number"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else "",
)
def test_bad_training_settings_are_clear_errors(tmp_path, capsys, flags, named):
    assert main(["train", "--run-dir", str(tmp_path / "run"), *TINY, *flags]) == 2
    assert named in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "run").exists()


def rewrite_weights(run_dir, change, resign=True):
    """Rewrite every weights file of every checkpoint: ``change(tensors)``, re-signed with the
    sha256 of the changed tensors (so that only the change is wrong) unless ``resign`` is
    false. Returns the files."""
    paths = [p for folder in checkpoint_folders(run_dir) for p in weights_files(folder)]
    for path in paths:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata()
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
        tensors = change(tensors)
        if resign:
            metadata["sha256"] = tensors_sha256(tensors)
        save_file(tensors, str(path), metadata=metadata)
    return paths


def assert_refused_naming_a_file(argv, paths, capsys, *phrases):
    command = argv[0]
    assert main(argv) == 2
    line = one_error_line(capsys.readouterr().err, command)
    assert any(str(path) in line for path in paths), line
    for phrase in phrases:
        assert phrase in line, line


def test_uninitialized_actnorm_checkpoint_is_refused_by_eval(tmp_path, capsys, reference):
    run_dir = copy_of(reference, tmp_path)

    def never_initialized(tensors):
        flags = [key for key in tensors if key.endswith("initialized")]  # none: the dequantizer
        assert flags or not any(key.startswith("bijector") for key in tensors)
        return {k: torch.zeros_like(v) if k in flags else v for k, v in tensors.items()}

    paths = rewrite_weights(run_dir, never_initialized)
    assert_refused_naming_a_file(
        ["eval", str(run_dir), "--device", "cpu"],
        paths,
        capsys,
        "ActNorm layers that were never initialized",
    )
    assert_refused_naming_a_file(
        ["sample", str(run_dir), "--device", "cpu", "--out", str(tmp_path / "grid.png")],
        paths,
        capsys,
        "never initialized",
    )
    assert_refused_naming_a_file(
        ["train", "--run-dir", str(run_dir), *RUN, "--resume", "auto"],
        paths,
        capsys,
        "never initialized",
    )


# -------------------------------------------------------- item 9: garbled tensor bytes
def garble(path, flip_one_bit):
    """Damage the tensor data of a safetensors file (its header stays intact)."""
    data = bytearray(path.read_bytes())
    start = 8 + struct.unpack("<Q", data[:8])[0]
    if flip_one_bit:  # a mantissa bit: the value stays finite
        data[start] ^= 0x01
    else:  # a run of 0xFF bytes: NaNs
        middle = (start + len(data)) // 2
        data[middle : middle + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("flip_one_bit", [False, True], ids=["nan-bytes", "one-bit"])
def test_garbled_weights_are_refused_naming_the_file(tmp_path, capsys, reference, flip_one_bit):
    run_dir = copy_of(reference, tmp_path)
    paths = [p for folder in checkpoint_folders(run_dir) for p in weights_files(folder)]
    for path in paths:
        garble(path, flip_one_bit)
    for argv in (
        ["eval", str(run_dir), "--device", "cpu"],
        ["sample", str(run_dir), "--device", "cpu", "--out", str(tmp_path / "g.png")],
        ["train", "--run-dir", str(run_dir), *RUN, "--resume", "auto"],
    ):
        assert_refused_naming_a_file(argv, paths, capsys, "is corrupt", "sha256")


# ------------------------------------------------ item 10: crashes become clear errors
def test_run_dir_that_is_a_file_is_a_clear_error(tmp_path, capsys):
    path = tmp_path / "notes.txt"
    path.write_text("not a folder")
    assert train_cli(path) == 2
    assert one_error_line(capsys.readouterr().err).endswith(
        f"run folder {path} is a file, not a folder; pick another --run-dir"
    )
    assert train_cli(path / "run") == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"cannot create run folder {path / 'run'}: Not a directory" in line
    assert path.read_text() == "not a folder"


def read_only(monkeypatch, folder):
    """Make ``folder`` read-only: chmod, or as root (who writes anyway) refuse every open
    for writing inside it."""
    if os.geteuid() != 0:
        folder.chmod(0o500)
        return
    real_os_open, real_open = os.open, open
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def inside(path):
        return pathlib.Path(os.path.abspath(path)).is_relative_to(folder)

    def os_open(path, flags, *args, **kwargs):
        if flags & write_flags and inside(path):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real_os_open(path, flags, *args, **kwargs)

    def builtin_open(file, mode="r", *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and set(mode) & set("wax+") and inside(file):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(file))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(os, "open", os_open)
    monkeypatch.setattr("builtins.open", builtin_open)


@pytest.mark.parametrize("existing_run", [False, True], ids=["fresh", "resume"])
def test_read_only_run_folder_is_a_clear_error(
    tmp_path, monkeypatch, capsys, reference, existing_run
):
    run_dir = copy_of(reference, tmp_path) if existing_run else tmp_path / "run"
    run_dir.mkdir(exist_ok=True)
    before = sorted(p.name for p in run_dir.iterdir())
    read_only(monkeypatch, run_dir)
    try:
        status = train_cli(
            run_dir, *(["--resume", "auto", "--max-steps", "10"] if existing_run else [])
        )
    finally:
        monkeypatch.undo()
        run_dir.chmod(0o700)
    assert status == 2
    assert one_error_line(capsys.readouterr().err).endswith(
        f"cannot write in run folder {run_dir}: Permission denied (errno 13); make it writable "
        f"or pick another --run-dir"
    )
    assert sorted(p.name for p in run_dir.iterdir()) == before


def test_checkpoint_without_its_model_config_is_a_clear_error(tmp_path, capsys, reference):
    run_dir = copy_of(reference, tmp_path)
    paths = []
    for folder in checkpoint_folders(run_dir):
        path = folder / "config.json"
        record = json.loads(path.read_text())
        del record["config"]
        path.write_text(json.dumps(record))
        paths.append(path)
    for argv in (
        ["eval", str(run_dir), "--device", "cpu"],
        ["sample", str(run_dir), "--device", "cpu", "--out", str(tmp_path / "g.png")],
        ["train", "--run-dir", str(run_dir), *RUN, "--resume", "auto"],
    ):
        assert_refused_naming_a_file(argv, paths, capsys, "lacks its 'config' table")


@pytest.mark.parametrize(
    "batch, problem",
    [
        (
            torch.zeros(2, 1, 8, 8, dtype=torch.float16),
            "input has dtype torch.float16 but the model's parameters are torch.float32",
        ),
        (
            torch.zeros(2, 1, 8, 8, dtype=torch.float64),
            "input has dtype torch.float64 but the model's parameters are torch.float32",
        ),
        (torch.zeros(0, 1, 8, 8), "input is an empty batch (shape (0, 1, 8, 8))"),
    ],
    ids=["float16", "float64", "empty"],
)
def test_bad_batches_under_validate_args_are_value_errors(batch, problem):
    glow = gf.Glow((1, 8, 8), 2, 1, hidden_channels=8, seed=0, validate_args=True)
    flow = gf.Flow(glow)
    flow.initialize(torch.rand(16, 1, 8, 8) - 0.5)
    for call in (glow, flow.log_prob, flow.encode):
        with pytest.raises(ValueError) as error:
            call(batch)
        assert str(error.value).startswith(("Glow.", "Flow.")) and problem in str(error.value)
    latents = [batch.new_zeros(batch.shape[0], *shape) for shape in glow.latent_shapes]
    with pytest.raises(ValueError, match=r"^Glow.inverse: latent 0 "):
        glow.inverse_levels(latents)


# ------------------------------------------- fault injection: SIGKILL inside each write
@pytest.mark.parametrize("case", KILLS, ids=lambda case: f"{case[0]}-{case[1]}")
def test_kill_inside_a_write_resumes_to_the_same_state(children, reference, case):
    run_dir, child = children[case]
    child.wait(timeout=300)
    assert child.returncode == -signal.SIGKILL, driver_stderr(child)  # the kill happened
    target, _ = case
    if target == "checkpoint":  # the half-written folder is there, not the checkpoint
        assert any(p.name.startswith(".tmp-") for p in checkpoint_folders(run_dir))
    elif target == "metrics":  # a torn last row
        assert not (run_dir / "metrics.csv").read_text().endswith("\n")
    else:
        assert not (run_dir / "result.json").exists()
        assert list(run_dir.glob(".result.json.tmp-*"))
    assert train_cli(run_dir, "--resume", "auto") == 0
    assert_same_run(run_dir, reference)
