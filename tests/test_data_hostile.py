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

from glowflow.data import load_dataset
from test_data import random_levels, write_cifar10, write_idx, write_mnist

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
    payload = {
        "data": RunsCode(os.system, f"touch {marker}"),
        "labels": [0],
        "label_names": ["x"] * 10,
    }
    target = tmp_path / "cifar-10-batches-py" / file_name
    target.write_bytes(pickle.dumps(payload, protocol=protocol))
    with pytest.raises(
        ValueError, match=rf"{file_name}.*posix\.system.*not allowed|{file_name}.*os\.system"
    ):
        load_dataset("cifar10", tmp_path)
    assert not marker.exists()


def test_cifar10_pickle_of_other_callables_is_refused(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    marker = tmp_path / "written"
    batch = tmp_path / "cifar-10-batches-py" / "test_batch"
    batch.write_bytes(
        pickle.dumps({"data": RunsCode(open, str(marker), "w"), "labels": []}, protocol=2)
    )
    with pytest.raises(ValueError, match=r"test_batch.*open.*not allowed"):
        load_dataset("cifar10", tmp_path, "test")
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar10_numpy_pickles_of_any_protocol_load(tmp_path: Path, protocol: int) -> None:
    write_cifar10(tmp_path)
    data, labels = random_levels((3, 3072), 9), [7, 8, 9]
    batch = {
        "batch_label": "testing batch 1 of 1",
        "labels": labels,
        "data": data,
        "filenames": ["a", "b", "c"],
    }
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(
        pickle.dumps(batch, protocol=protocol)
    )
    test = load_dataset("cifar10", tmp_path, "test")
    assert len(test) == 3 and [test[i][1] for i in range(3)] == labels
    assert torch.equal(test[2][0].flatten(), torch.from_numpy(data[2]))


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        (b"\x80\x02}q\x00(X\x04\x00\x00\x00da", "cannot read .*test_batch as a pickle"),
        (b"not a pickle at all", "cannot read .*test_batch as a pickle"),
        (pickle.dumps([1, 2, 3]), "test_batch is not a dict with 'data' and 'labels'"),
        (
            pickle.dumps({"data": np.zeros((2, 3072), np.int64), "labels": [0, 1]}),
            r"uint8 \(N, 3072\), found int64",
        ),
        (
            pickle.dumps({"data": np.zeros((2, 1000), np.uint8), "labels": [0, 1]}),
            r"found uint8 \(2, 1000\)",
        ),
        (
            pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [0]}),
            r"2 images but labels int64 \(1,\)",
        ),
        (
            pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [0, 10]}),
            r"labels must be in 0..9, found 0..10",
        ),
    ],
    ids=[
        "truncated",
        "not-a-pickle",
        "a-list",
        "int64-data",
        "short-rows",
        "one-label-short",
        "label-10",
    ],
)
def test_cifar10_bad_batch_names_the_file(tmp_path: Path, batch: bytes, message: str) -> None:
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(batch)
    with pytest.raises(ValueError, match=message):
        load_dataset("cifar10", tmp_path, "test")


def test_cifar10_bad_meta_names_the_file(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "batches.meta").write_bytes(
        pickle.dumps({"label_names": ["a"]})
    )
    with pytest.raises(ValueError, match=r"batches\.meta has no list of 10 'label_names'"):
        load_dataset("cifar10", tmp_path)


# ---------------------------------------------------------------- MNIST idx files


def test_mnist_label_count_mismatch_names_both_files(tmp_path: Path) -> None:
    write_mnist(tmp_path, "MNIST")
    raw = tmp_path / "MNIST" / "raw"
    write_idx(raw / "train-labels-idx1-ubyte", np.arange(5, dtype=np.uint8))  # 7 images, 5 labels
    with pytest.raises(
        ValueError,
        match=r"train-images-idx3-ubyte holds 7 images but .*train-labels-idx1-ubyte holds 5",
    ):
        load_dataset("mnist", tmp_path)
    write_idx(raw / "train-labels-idx1-ubyte", np.arange(9, dtype=np.uint8))  # 7 images, 9 labels
    with pytest.raises(ValueError, match="holds 7 images but .* holds 9 labels"):
        load_dataset("mnist", tmp_path)


def test_mnist_wrong_magic_names_file_and_both_numbers(tmp_path: Path) -> None:
    write_mnist(tmp_path, "MNIST")
    labels = tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    images = tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    images.write_bytes(labels.read_bytes())  # a labels file where the images belong: magic 2049
    with pytest.raises(
        ValueError,
        match=r"t10k-images-idx3-ubyte .*magic number 2049 \(0x00000801\), expected 2051",
    ):
        load_dataset("mnist", tmp_path, "test")
    images.write_bytes(b"\x1f\x8b\x08\x00" + bytes(100))  # still gzipped
    with pytest.raises(
        ValueError, match=r"t10k-images-idx3-ubyte .*magic number 529205248 .*expected 2051"
    ):
        load_dataset("mnist", tmp_path, "test")


def test_mnist_truncated_or_padded_file_names_it(tmp_path: Path) -> None:
    write_mnist(tmp_path, "FashionMNIST")
    images = tmp_path / "FashionMNIST" / "raw" / "train-images-idx3-ubyte"
    whole = images.read_bytes()
    images.write_bytes(whole[:-100])
    with pytest.raises(
        ValueError, match=r"train-images-idx3-ubyte holds 5388 data bytes but its header says 5488"
    ):
        load_dataset("fashion-mnist", tmp_path)
    images.write_bytes(whole + b"\0")
    with pytest.raises(ValueError, match="holds 5489 data bytes .* trailing data"):
        load_dataset("fashion-mnist", tmp_path)


def test_mnist_label_out_of_range(tmp_path: Path) -> None:
    write_mnist(tmp_path, "MNIST")
    write_idx(
        tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte", np.array([1, 12, 3], dtype=np.uint8)
    )
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte has label 12"):
        load_dataset("mnist", tmp_path, "test")


# ---------------------------------------------------------------- image files


def write_png(
    path: Path, rows: Iterable[bytes], size: tuple[int, int], bit_depth: int, colour_type: int
) -> None:
    """A PNG written by hand (filter 0 on every row), streaming ``rows`` through zlib."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(b"\0" + row) for row in rows) + compressor.flush()
    header = struct.pack(">IIBBBBB", *size, bit_depth, colour_type, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def test_sixteen_bit_grey_png_is_scaled_not_white(tmp_path: Path) -> None:
    image_module = pytest.importorskip("PIL.Image")
    values = (np.arange(48, dtype=np.uint16) * 1393).reshape(6, 8)  # 0 .. 65471
    values[0, 0], values[0, 1] = 65535, 257 * 128
    image_module.fromarray(values).save(tmp_path / "deep.png")
    assert image_module.open(tmp_path / "deep.png").mode == "I;16"
    data = load_dataset(f"folder:{tmp_path}")
    expected = np.floor(values / 257 + 0.5).astype(np.uint8)
    assert data.shape == (1, 6, 8)
    assert torch.equal(data[0][0][0], torch.from_numpy(expected))
    assert data[0][0][0, 0, :2].tolist() == [255, 128]


def test_sixteen_bit_rgb_png_is_scaled(tmp_path: Path) -> None:
    pytest.importorskip("PIL.Image")
    levels = random_levels((5, 4, 3), 4)
    values = levels.astype(">u2") * 257  # the 16-bit value of each 8-bit level
    write_png(tmp_path / "deep.png", (row.tobytes() for row in values), (4, 5), 16, 2)
    data = load_dataset(f"folder:{tmp_path}")
    assert data.shape == (3, 5, 4)
    assert torch.equal(data[0][0], torch.from_numpy(levels).permute(2, 0, 1))


def test_sixteen_bit_grey_in_an_rgb_folder(tmp_path: Path) -> None:
    image_module = pytest.importorskip("PIL.Image")
    image_module.fromarray(random_levels((4, 4, 3), 0)).save(tmp_path / "a.png")
    image_module.fromarray(np.full((4, 4), 257 * 200, dtype=np.uint16)).save(tmp_path / "b.png")
    data = load_dataset(f"folder:{tmp_path}")
    assert data.shape == (3, 4, 4) and data[1][0].unique().tolist() == [200]


def save_pictures(folder: Path, shape: tuple[int, ...], count: int = 2) -> None:
    image_module = pytest.importorskip("PIL.Image")
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        image_module.fromarray(random_levels(shape, i)).save(folder / f"{i}.png")


def test_folder_test_part_of_another_size(tmp_path: Path) -> None:
    save_pictures(tmp_path / "train" / "a", (8, 8, 3))
    save_pictures(tmp_path / "test" / "a", (16, 12, 3))
    assert len(load_dataset(f"folder:{tmp_path}")) == 2
    with pytest.raises(ValueError, match=r"train/a/0\.png is 8x8 but .*test/a/0\.png is 12x16"):
        load_dataset(f"folder:{tmp_path}", split="test")
    test = load_dataset(f"folder:{tmp_path}", split="test", image_size=8)
    assert test.shape == (3, 8, 8) and test[0][0].shape == (3, 8, 8)


def test_folder_test_part_takes_train_channels(tmp_path: Path) -> None:
    save_pictures(tmp_path / "train", (8, 8, 3))
    save_pictures(tmp_path / "test", (8, 8))  # greyscale
    train, test = (
        load_dataset(f"folder:{tmp_path}"),
        load_dataset(f"folder:{tmp_path}", split="test"),
    )
    assert train.shape == test.shape == (3, 8, 8) and test[0][0].shape == (3, 8, 8)


def test_folder_test_part_with_other_classes(tmp_path: Path) -> None:
    for label in ("cat", "dog", "fox"):
        save_pictures(tmp_path / "train" / label, (4, 4))
    for label in ("dog", "fox"):
        save_pictures(tmp_path / "test" / label, (4, 4))
    with pytest.raises(
        ValueError,
        match=r"test/ has classes \['dog', 'fox'\] but train/ has \['cat', 'dog', 'fox'\]",
    ):
        load_dataset(f"folder:{tmp_path}", split="test")


def test_folder_a_later_image_of_another_size(tmp_path: Path) -> None:
    save_pictures(tmp_path / "a", (8, 8), count=3)
    save_pictures(tmp_path / "b", (8, 8), count=1)
    image_module = pytest.importorskip("PIL.Image")
    image_module.fromarray(random_levels((8, 9), 0)).save(tmp_path / "b" / "z.png")
    with pytest.raises(ValueError, match=r"a/0\.png is 8x8 but .*b/z\.png is 9x8"):
        load_dataset(f"folder:{tmp_path}")


def broken_files(folder: Path) -> dict[str, bytes]:
    """Three broken ``.png`` files: cut short, not an image at all, and a 20000x20000 bomb."""
    image_module = pytest.importorskip("PIL.Image")
    image_module.fromarray(random_levels((64, 64, 3), 0)).save(folder / "whole.png")
    whole = (folder / "whole.png").read_bytes()
    (folder / "whole.png").unlink()
    bomb = folder / "bomb.png"
    row = bytes(20000 // 8)
    write_png(bomb, (row for _ in range(20000)), (20000, 20000), 1, 0)  # 1-bit: ~60 kB on disk
    return {
        "truncated": whole[: len(whole) // 2],
        "text": b"this is not a picture\n",
        "bomb": bomb.read_bytes(),
    }


@pytest.mark.parametrize(
    ("kind", "cause"),
    [
        ("truncated", "image file is truncated"),
        ("text", "cannot identify image file"),
        ("bomb", "decompression bomb"),
    ],
)
@pytest.mark.parametrize("part", ["train", "test"])
def test_folder_broken_image_found_at_load(
    tmp_path: Path, kind: str, cause: str, part: str
) -> None:
    contents = broken_files(tmp_path)
    for name in ("train", "test"):
        save_pictures(tmp_path / "data" / name / "a", (64, 64, 3))
    bad = tmp_path / "data" / part / "a" / "9.png"
    bad.write_bytes(contents[kind])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=rf"^cannot read image {bad}: .*({cause})") as error:
            load_dataset(f"folder:{tmp_path / 'data'}", split=part)
    assert "\n" not in str(error.value)
    other = "test" if part == "train" else "train"
    assert len(load_dataset(f"folder:{tmp_path / 'data'}", split=other)) == 2


def test_decompression_bomb_warning_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image_module = pytest.importorskip("PIL.Image")
    save_pictures(tmp_path, (12, 12))  # 144 pixels: past the limit below, within twice it
    monkeypatch.setattr(image_module, "MAX_IMAGE_PIXELS", 100)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(
            ValueError, match=r"cannot read image .*0\.png: .*exceeds limit of 100 pixels"
        ):
            load_dataset(f"folder:{tmp_path}")


def test_celeba_broken_image_names_it_on_access(tmp_path: Path) -> None:
    from test_data import write_celeba

    names, _ = write_celeba(tmp_path)
    (tmp_path / "celeba" / "img_align_celeba" / names[1]).write_bytes(b"\xff\xd8\xff\xe0 cut")
    data = load_dataset("celeba", tmp_path)
    with pytest.raises(ValueError, match=rf"^cannot read image .*{names[1]}: "):
        data[1]


def test_celeba_image_of_another_size_names_it(tmp_path: Path) -> None:
    image_module = pytest.importorskip("PIL.Image")
    from test_data import write_celeba

    names, _ = write_celeba(tmp_path)
    image_module.fromarray(random_levels((250, 200, 3), 0)).save(
        tmp_path / "celeba" / "img_align_celeba" / names[4]
    )
    data = load_dataset("celeba", tmp_path)
    assert data[1][0].shape == (3, 178, 178)
    with pytest.raises(
        ValueError,
        match=rf"image .*{names[4]} is 200x200 but .*{names[0]} is 178x178 \(width x height, after cropping\)",
    ):
        data[2]


# ---------------------------------------------------------------- SVHN and CelebA files


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        (
            {"X": np.zeros((32, 32, 3, 2), np.float64), "y": np.ones((2, 1))},
            r"'X' must be uint8 \(32, 32, 3, N\), found float64",
        ),
        (
            {"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.ones((3, 1), np.uint8)},
            r"2 images but 'y' is uint8 \(3, 1\)",
        ),
        (
            {"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.array([[3], [0]], np.uint8)},
            r"labels must be 1..10 .*found 0",
        ),
        (
            {"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.array([[11], [1]], np.uint8)},
            r"found 11",
        ),
        ({"images": np.zeros(3)}, "lacks the variables 'X' and 'y'"),
    ],
)
def test_svhn_bad_file_names_it(
    tmp_path: Path, arrays: dict[str, np.ndarray], message: str
) -> None:
    scipy_io = pytest.importorskip("scipy.io")
    scipy_io.savemat(tmp_path / "train_32x32.mat", arrays)
    with pytest.raises(ValueError, match=rf"SVHN file .*train_32x32\.mat.*{message}"):
        load_dataset("svhn", tmp_path)


def test_svhn_not_a_mat_file(tmp_path: Path) -> None:
    pytest.importorskip("scipy.io")
    (tmp_path / "test_32x32.mat").write_bytes(b"<html>quota exceeded</html>" * 20)
    with pytest.raises(
        ValueError, match=r"cannot read SVHN file .*test_32x32\.mat as a MATLAB v5 file"
    ):
        load_dataset("svhn", tmp_path, "test")


def test_svhn_float_labels_load(tmp_path: Path) -> None:
    scipy_io = pytest.importorskip("scipy.io")
    x = random_levels((32, 32, 3, 2), 1)
    scipy_io.savemat(tmp_path / "train_32x32.mat", {"X": x, "y": np.array([[10.0], [4.0]])})
    data = load_dataset("svhn", tmp_path)
    assert [data[i][1] for i in range(2)] == [0, 4]


def test_celeba_bad_lists_name_the_file(tmp_path: Path) -> None:
    from test_data import write_celeba

    names, _ = write_celeba(tmp_path)
    attributes, partition = (
        tmp_path / "celeba" / "list_attr_celeba.txt",
        tmp_path / "celeba" / "list_eval_partition.txt",
    )
    good_attributes, good_partition = attributes.read_text(), partition.read_text()
    attributes.write_text(good_attributes.replace(" 1", " 2", 1))
    with pytest.raises(
        ValueError,
        match=r"list_attr_celeba\.txt line 3: expected 40 values of -1 or 1 after 000001\.jpg",
    ):
        load_dataset("celeba", tmp_path)
    attributes.write_text("\n".join(good_attributes.splitlines()[:-1]) + "\n")  # the last row lost
    with pytest.raises(
        ValueError, match=r"list_attr_celeba\.txt says it lists 5 images but lists 4"
    ):
        load_dataset("celeba", tmp_path)
    attributes.write_text(good_attributes)
    partition.write_text(good_partition.replace(f"{names[1]} 0", f"{names[1]} 3"))
    with pytest.raises(
        ValueError,
        match=rf"list_eval_partition\.txt line 2: expected 'NAME 0\|1\|2', found '{names[1]} 3'",
    ):
        load_dataset("celeba", tmp_path)
    partition.write_text(good_partition.replace(names[4], "999999.jpg"))
    with pytest.raises(
        ValueError, match=r"list different images \(5 and 5; 2 in one only, first 000005\.jpg\)"
    ):
        load_dataset("celeba", tmp_path)
    partition.write_text(good_partition)
    (tmp_path / "celeba" / "img_align_celeba" / names[4]).unlink()
    with pytest.raises(
        ValueError,
        match=r"1 of the 3 train images are missing from .*img_align_celeba, first 000005\.jpg",
    ):
        load_dataset("celeba", tmp_path)
    assert len(load_dataset("celeba", tmp_path, "test")) == 1
