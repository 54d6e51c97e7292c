"""metrics.csv survives kills: atomic rewrite on resume, fsynced appends, torn rows dropped."""

import os

import pytest

from glowflow.training import run_log
from glowflow.training.run_log import COLUMNS, RunLog, read_metrics


def logged_run(run_dir, steps):
    log = RunLog(run_dir)
    for step in steps:
        log.write(step=step, train_bpd=1.0 + step / 100, lr=1e-3)
    log.close()
    return run_dir / "metrics.csv"


def test_rows_round_trip_with_blanks(tmp_path):
    path = logged_run(tmp_path, [1, 2])
    rows = read_metrics(path)
    assert [row["step"] for row in rows] == [1.0, 2.0]
    assert rows[0]["train_bpd"] == 1.01 and rows[0]["test_bpd"] is None
    assert path.read_text().splitlines()[0] == ",".join(COLUMNS)
    with pytest.raises(ValueError, match="unknown metrics columns"):
        RunLog(tmp_path).write(step=3, loss=1.0)


def test_resume_keeps_every_row_up_to_the_resume_step(tmp_path):
    path = logged_run(tmp_path, [5, 10, 15, 20])
    log = RunLog(tmp_path, resume_step=15)
    assert [row["step"] for row in read_metrics(path)] == [5.0, 10.0, 15.0]
    log.write(step=20, train_bpd=0.5)
    assert [row["step"] for row in read_metrics(path)] == [5.0, 10.0, 15.0, 20.0]
    assert read_metrics(path)[-1]["train_bpd"] == 0.5
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left


def test_fresh_run_starts_with_only_the_header(tmp_path):
    path = logged_run(tmp_path, [5, 10])
    RunLog(tmp_path)
    assert read_metrics(path) == [] and path.read_text().strip() == ",".join(COLUMNS)


def test_torn_last_row_is_ignored_and_dropped_on_resume(tmp_path):
    path = logged_run(tmp_path, [5, 10])
    with open(path, "a") as handle:
        handle.write("15,0.9,,")  # a kill in the middle of a row: no newline, too few fields
    assert [row["step"] for row in read_metrics(path)] == [5.0, 10.0]
    RunLog(tmp_path, resume_step=100).write(step=15, train_bpd=0.8)
    assert [(row["step"], row["train_bpd"]) for row in read_metrics(path)] == [
        (5.0, 1.05),
        (10.0, 1.1),
        (15.0, 0.8),
    ]


def test_row_with_wrong_field_count_is_dropped(tmp_path):
    path = logged_run(tmp_path, [5])
    with open(path, "a", newline="") as handle:
        handle.write("10,0.9\r\n")
    assert [row["step"] for row in read_metrics(path)] == [5.0]


def test_kill_during_the_resume_rewrite_leaves_the_file_intact(tmp_path, monkeypatch):
    path = logged_run(tmp_path, [5, 10, 15])
    before = path.read_bytes()

    def killed(*args):
        raise KeyboardInterrupt("killed just before the rename")

    monkeypatch.setattr(run_log.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        RunLog(tmp_path, resume_step=5)
    assert path.read_bytes() == before
    monkeypatch.undo()

    # An exception cleans its temporary up; a real kill leaves one, which the next resume of
    # the same process overwrites.
    leftover = tmp_path / f".metrics.csv.tmp-{os.getpid()}"
    assert not leftover.exists()
    leftover.write_text("half a rewrite")
    RunLog(tmp_path, resume_step=5)
    assert not leftover.exists()
    assert [row["step"] for row in read_metrics(path)] == [5.0]


def test_empty_file_from_an_older_kill_resumes_as_no_rows(tmp_path):
    (tmp_path / "metrics.csv").write_text("")
    RunLog(tmp_path, resume_step=10).write(step=11)
    assert [row["step"] for row in read_metrics(tmp_path / "metrics.csv")] == [11.0]


def test_foreign_file_is_a_clear_error(tmp_path):
    (tmp_path / "metrics.csv").write_text("a,b\n1,2\n")
    with pytest.raises(RuntimeError, match="not a glowflow metrics file"):
        read_metrics(tmp_path / "metrics.csv")
