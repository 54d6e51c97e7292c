"""Checkpoints under faults and hostile input: failed writes, non-finite state, missing
metadata, corrupt bytes, leftovers of killed writes."""

import errno
import json
import os
import pathlib
import struct
import subprocess
import sys

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from glowflow.store import load_model
from glowflow.store.loader import list_checkpoints, read_weights
from glowflow.store.record import CONFIG_FILE
from glowflow.store.record import WEIGHTS_FILE as MODEL_FILE
from glowflow.training import checkpoint
from glowflow.training.checkpoint import (
    NonFiniteStateError,
    checkpoint_path,
    load_run,
    remove_stale_temporaries,
    save_checkpoint,
)
from test_checkpoint import INFO, initialized_flow, tiny_config
from test_train import single_thread  # noqa: F401  (autouse fixture)


@pytest.fixture
def run(tmp_path):
    """A run folder with checkpoint 5 written; returns (run_dir, config, flow)."""
    config = tiny_config()
    flow = initialized_flow(config)
    save_checkpoint(tmp_path, 5, flow, config, INFO, {"optimizer": {}})
    return tmp_path, config, flow


def assert_only_checkpoint_5(run_dir, flow):
    """The run folder holds checkpoint 5, intact, and nothing else."""
    assert [p.name for p in (run_dir / "checkpoints").iterdir()] == ["step-00000005"]
    loaded = load_model(run_dir)
    assert loaded.step == 5
    for key, value in flow.state_dict().items():
        assert torch.equal(value, loaded.flow.state_dict()[key]), key


# ------------------------------------------------------------------------- failed writes
def failing_write(error, after_files=0):
    """A ``Path.write_bytes`` that writes ``after_files`` files, then half of the next and
    raises ``error``: a disk that fills up in the middle of a checkpoint."""
    written = []
    real = pathlib.Path.write_bytes

    def write_bytes(path, data):
        if len(written) == after_files:
            real(path, data[: len(data) // 2])
            raise error
        written.append(path)
        return real(path, data)

    return write_bytes


@pytest.mark.parametrize("after_files", [0, 1])
def test_full_disk_is_one_clear_error_and_leaves_nothing(run, monkeypatch, after_files):
    run_dir, config, flow = run
    full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(pathlib.Path, "write_bytes", failing_write(full, after_files))
    with pytest.raises(RuntimeError) as failed:
        save_checkpoint(run_dir, 25, flow, config, INFO, {"optimizer": {}})
    assert str(failed.value) == (
        f"cannot write checkpoint {checkpoint_path(run_dir, 25)}: No space left on device "
        f"(errno 28); free space and resume with --resume auto"
    )
    monkeypatch.undo()
    assert_only_checkpoint_5(run_dir, flow)


def test_read_only_folder_is_one_clear_error(run, monkeypatch):
    run_dir, config, flow = run
    if os.geteuid() == 0:  # root writes into read-only folders: simulate the refusal
        denied = OSError(errno.EACCES, os.strerror(errno.EACCES))
        monkeypatch.setattr(pathlib.Path, "write_bytes", failing_write(denied))
    else:
        (run_dir / "checkpoints").chmod(0o500)
    try:
        with pytest.raises(
            RuntimeError,
            match=r"^cannot write checkpoint .*step-00000025: "
            r"Permission denied \(errno 13\); make the run "
            r"folder writable and resume with --resume auto$",
        ):
            save_checkpoint(run_dir, 25, flow, config, INFO, {})
    finally:
        (run_dir / "checkpoints").chmod(0o700)
        monkeypatch.undo()
    assert_only_checkpoint_5(run_dir, flow)


def test_kill_during_a_write_leaves_no_temporary(run, monkeypatch):
    run_dir, config, flow = run
    monkeypatch.setattr(pathlib.Path, "write_bytes", failing_write(KeyboardInterrupt(), 1))
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(run_dir, 25, flow, config, INFO, {})
    monkeypatch.undo()
    assert_only_checkpoint_5(run_dir, flow)


def test_failed_replacement_of_the_same_step_restores_it(run, monkeypatch):
    run_dir, config, flow = run
    real, calls = os.replace, []

    def replace(source, target):
        calls.append(pathlib.Path(source).name)
        if pathlib.Path(source).name.startswith(".tmp-"):
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real(source, target)

    monkeypatch.setattr(checkpoint.os, "replace", replace)
    other = initialized_flow(config)
    with pytest.raises(
        RuntimeError,
        match=r"step-00000005: Input/output error \(errno 5\); "
        r"fix this and resume",
    ):
        save_checkpoint(run_dir, 5, other, config, INFO, {})
    monkeypatch.undo()
    assert calls[0] == "step-00000005" and calls[1].startswith(".tmp-")
    assert_only_checkpoint_5(run_dir, flow)


# ---------------------------------------------------------------------- non-finite state
def test_non_finite_weights_are_never_written(tmp_path):
    config = tiny_config()
    flow = initialized_flow(config)
    name, parameter = next(iter(flow.named_parameters()))
    with torch.no_grad():
        parameter.view(-1)[0] = float("nan")
    with pytest.raises(
        NonFiniteStateError,
        match=rf"refusing to write checkpoint .*step-00000003: "
        rf"model.safetensors.{name} is not finite",
    ):
        save_checkpoint(tmp_path, 3, flow, config, INFO, {})
    assert not (tmp_path / "checkpoints").exists()


def test_non_finite_ema_weights_are_never_written(run):
    run_dir, config, flow = run
    ema = initialized_flow(config)
    name, parameter = list(ema.named_parameters())[-1]
    with torch.no_grad():
        parameter.view(-1)[-1] = float("-inf")
    with pytest.raises(NonFiniteStateError, match=rf"ema.safetensors.{name} is not finite"):
        save_checkpoint(run_dir, 25, flow, config, INFO, {}, ema_flow=ema)
    assert_only_checkpoint_5(run_dir, flow)


def test_non_finite_optimizer_state_is_never_written(run):
    run_dir, config, flow = run
    trained = initialized_flow(config)
    optimizer = torch.optim.Adam(trained.parameters())
    trained.log_prob(torch.rand(4, 1, 8, 8) - 0.5).mean().neg().backward()
    optimizer.step()
    exp_avg_sq = optimizer.state_dict()["state"][2]["exp_avg_sq"]
    exp_avg_sq[(0,) * exp_avg_sq.dim()] = float("nan")
    with pytest.raises(
        NonFiniteStateError, match=r"state.pt.optimizer.state.2.exp_avg_sq is not finite"
    ):
        save_checkpoint(run_dir, 25, trained, config, INFO, {"optimizer": optimizer.state_dict()})
    assert_only_checkpoint_5(run_dir, flow)


# --------------------------------------------------------------- metadata and integrity
def rewrite(path, change_metadata=lambda m: m, change_tensors=lambda t: t):
    """Rewrite a saved weights file with edited metadata or tensors."""
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    save_file(change_tensors(tensors), str(path), metadata=change_metadata(metadata))


@pytest.mark.parametrize("key", ["family", "config", "data", "dequantizer", "provenance"])
def test_missing_record_entry_is_named(run, key):
    run_dir, _, _ = run
    path = checkpoint_path(run_dir, 5) / CONFIG_FILE
    record = json.loads(path.read_text())
    del record[key]
    path.write_text(json.dumps(record))
    with pytest.raises(RuntimeError, match=rf"^{path} lacks its '{key}'"):
        load_model(run_dir)


@pytest.mark.parametrize("key", ["train_config", "step"])
def test_a_checkpoint_without_its_run_is_named(run, key):
    run_dir, _, _ = run
    path = checkpoint_path(run_dir, 5) / CONFIG_FILE
    record = json.loads(path.read_text())
    del record["provenance"][key]
    path.write_text(json.dumps(record))
    with pytest.raises(RuntimeError, match=rf"^{path} lacks the run's 'train_config' and 'step'"):
        load_run(run_dir)


def test_sha256_is_stored_and_flipped_data_bytes_are_caught(run):
    run_dir, _, _ = run
    path = checkpoint_path(run_dir, 5) / MODEL_FILE
    assert len(read_weights(path)[1]["sha256"]) == 64
    data = bytearray(path.read_bytes())
    header_end = 8 + struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:header_end])
    assert header["__metadata__"]["sha256"]
    # Flip the lowest bit of a tensor's first byte (a mantissa bit): the value stays finite.
    begin, end = next(v["data_offsets"] for k, v in header.items() if k != "__metadata__")
    assert end > begin
    data[header_end + begin] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(
        RuntimeError,
        match=rf"^{path} is corrupt: its tensors do not match the "
        rf"stored sha256",
    ):
        load_model(run_dir)


def test_older_files_without_sha256_load_only_when_finite(run):
    run_dir, _, flow = run
    path = checkpoint_path(run_dir, 5) / MODEL_FILE
    unsigned = {k: v for k, v in read_weights(path)[1].items() if k != "sha256"}
    rewrite(path, lambda metadata: unsigned)
    with pytest.raises(RuntimeError, match=rf"^{path} lacks the sha256"):
        load_model(run_dir)  # a file of this format is always signed
    rewrite(path, lambda metadata: {**unsigned, "format": "glowflow.checkpoint/1"})
    assert_only_checkpoint_5(run_dir, flow)  # files from before signing: the first format

    def poison(tensors):
        name = next(k for k, v in tensors.items() if v.is_floating_point())
        tensors[name].view(-1)[0] = float("nan")
        return tensors

    rewrite(path, change_tensors=poison)
    with pytest.raises(RuntimeError, match=rf"^{path} holds non-finite values \(NaN or inf\) in "):
        load_model(run_dir)


# -------------------------------------------------------------- leftovers of killed writes
def dead_pid():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_remove_stale_temporaries(run):
    run_dir, _, flow = run
    root = run_dir / "checkpoints"
    dead, live = dead_pid(), os.getppid()
    stale = [
        root / f".tmp-step-00000010-{dead}",
        root / f".old-step-00000005-{dead}",
        root / f".tmp-step-00000015-{os.getpid()}",
    ]
    kept = [root / f".tmp-step-00000020-{live}", root / ".tmp-notes"]
    for folder in stale + kept:
        folder.mkdir()
        (folder / MODEL_FILE).write_bytes(b"partial")
    (run_dir / f".metrics.csv.tmp-{dead}").write_text("step\n")
    (run_dir / "metrics.csv").write_text("step\n")

    removed = remove_stale_temporaries(run_dir)
    assert sorted(removed) == sorted(stale + [run_dir / f".metrics.csv.tmp-{dead}"])
    assert sorted(p.name for p in root.iterdir()) == sorted(
        [".tmp-notes", f".tmp-step-00000020-{live}", "step-00000005"]
    )
    assert (run_dir / "metrics.csv").is_file()
    assert [p.name for p in list_checkpoints(run_dir)] == ["step-00000005"]
    assert remove_stale_temporaries(run_dir) == []
    assert remove_stale_temporaries(run_dir / "nowhere") == []
