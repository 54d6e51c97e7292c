"""Tests of glowflow.data on hostile and broken files: each must give a clear error naming the
file and the cause, run no code from the file, or load the right levels (issue 13)."""

from __future__ import annotations

import os
import pickle
import struct
import warnings
import zlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pytest
import torch
from test_data import random_levels, write_cifar10, write_idx, write_mnist

from glowflow.data import load_dataset

# ---------------------------------------------------------------- CIFAR-10 pickles


class RunsCode:
    """Pickles into a call of ``function(*args)``, as a crafted dataset file would."""

    def __init__(self, function: object, *args: object) -> None:
        self.call = (function, args)

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return self.call


@pytest.mark.parametrize("protocol", [2, 4, 5])
@pytest.mark.parametrize("file_name", ["data_batch_3", "batches.meta"])
def test_cifar10_pickle_payload_is_not_run(tmp_path: Path, protocol: int, file_name: str) -> None:
    write_cifar10(tmp_path)
    marker = tmp_path / "pwned"
    payload = {"data": RunsCode(os.system, f"touch {marker}"), "labels": [0], "label_names": ["x"] * 10}
    target = tmp_path / "cifar-10-batches-py" / file_name
    target.write_bytes(pickle.dumps(payload, protocol=protocol))
    with pytest.raises(ValueError, match=rf"{file_name}.*posix\.system.*not allowed|{file_name}.*os\.system"):
        load_dataset("cifar10", tmp_path)
    assert not marker.exists()


def test_cifar10_pickle_of_other_callables_is_refused(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    marker = tmp_path / "written"
    batch = tmp_path / "cifar-10-batches-py" / "test_batch"
    batch.write_bytes(pickle.dumps({"data": RunsCode(open, str(marker), "w"), "labels": []}, protocol=2))
    with pytest.raises(ValueError, match=r"test_batch.*open.*not allowed"):
        load_dataset("cifar10", tmp_path, "test")
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar10_numpy_pickles_of_any_protocol_load(tmp_path: Path, protocol: int) -> None:
    write_cifar10(tmp_path)
    data, labels = random_levels((3, 3072), 9), [7, 8, 9]
    batch = {"batch_label": "testing batch 1 of 1", "labels": labels, "data": data, "filenames": ["a", "b", "c"]}
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps(batch, protocol=protocol))
    test = load_dataset("cifar10", tmp_path, "test")
    assert len(test) == 3 and [test[i][1] for i in range(3)] == labels
    assert torch.equal(test[2][0].flatten(), torch.from_numpy(data[2]))


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        (b"\x80\x02}q\x00(X\x04\x00\x00\x00da", "cannot read .*test_batch as a pickle"),
        (b"not a pickle at all", "cannot read .*test_batch as a pickle"),
        (pickle.dumps([1, 2, 3]), "test_batch is not a dict with 'data' and 'labels'"),
        (pickle.dumps({"data": np.zeros((2, 3072), np.int64), "labels": [0, 1]}), r"uint8 \(N, 3072\), found int64"),
        (pickle.dumps({"data": np.zeros((2, 1000), np.uint8), "labels": [0, 1]}), r"found uint8 \(2, 1000\)"),
        (pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [0]}), r"2 images but labels int64 \(1,\)"),
        (pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [0, 10]}), r"labels must be in 0..9, found 0..10"),
    ],
    ids=["truncated", "not-a-pickle", "a-list", "int64-data", "short-rows", "one-label-short", "label-10"],
)
def test_cifar10_bad_batch_names_the_file(tmp_path: Path, batch: bytes, message: str) -> None:
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(batch)
    with pytest.raises(ValueError, match=message):
        load_dataset("cifar10", tmp_path, "test")


def test_cifar10_bad_meta_names_the_file(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "batches.meta").write_bytes(pickle.dumps({"label_names": ["a"]}))
    with pytest.raises(ValueError, match=r"batches\.meta has no list of 10 'label_names'"):
        load_dataset("cifar10", tmp_path)


# ---------------------------------------------------------------- MNIST idx files


def test_mnist_label_count_mismatch_names_both_files(tmp_path: Path) -> None:
    write_mnist(tmp_path, "MNIST")
    raw = tmp_path / "MNIST" / "raw"
    write_idx(raw / "train-labels-idx1-ubyte", np.arange(5, dtype=np.uint8))  # 7 images, 5 labels
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte holds 7 images but .*train-labels-idx1-ubyte holds 5"):
        load_dataset("mnist", tmp_path)
    write_idx(raw / "train-labels-idx1-ubyte", np.arange(9, dtype=np.uint8))  # 7 images, 9 labels
    with pytest.raises(ValueError, match="holds 7 images but .* holds 9 labels"):
        load_dataset("mnist", tmp_path)


def test_mnist_wrong_magic_names_file_and_both_numbers(tmp_path: Path) -> None:
    write_mnist(tmp_path, "MNIST")
    labels = tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    images = tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    images.write_bytes(labels.read_bytes())  # a labels file where the images belong: magic 2049
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte .*magic number 2049 \(0x00000801\), expected 2051"):
        load_dataset("mnist", tmp_path, "test")
    images.write_bytes(b"\x1f\x8b\x08\x00" + bytes(100))  # still gzipped
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte .*magic number 529205248 .*expected 2051"):
        load_dataset("mnist", tmp_path, "test")


def test_mnist_truncated_or_padded_file_names_it(tmp_path: Path) -> None:
    write_mnist(tmp_path, "FashionMNIST")
    images = tmp_path / "FashionMNIST" / "raw" / "train-images-idx3-ubyte"
    whole = images.read_bytes()
    images.write_bytes(whole[:-100])
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte holds 5388 data bytes but its header says 5488"):
        load_dataset("fashion-mnist", tmp_path)
    images.write_bytes(whole + b"\0")
    with pytest.raises(ValueError, match="holds 5489 data bytes .* trailing data"):
        load_dataset("fashion-mnist", tmp_path)


def test_mnist_label_out_of_range(tmp_path: Path) -> None:
    write_mnist(tmp_path, "MNIST")
    write_idx(tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte", np.array([1, 12, 3], dtype=np.uint8))
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte has label 12"):
        load_dataset("mnist", tmp_path, "test")
