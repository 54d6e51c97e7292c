"""Tests of glowflow.data: preprocessing, the embedded digits, and every loader on small files
written here in the real on-disk formats (nothing is downloaded)."""

from __future__ import annotations

import pickle
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from glowflow.data import (
    DATASET_NAMES,
    dequantize,
    levels_to_unit,
    load_dataset,
    reduce_bits,
    unit_to_image,
    unit_to_levels,
)
from glowflow.data.digits import read_digits_arrays

CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose "
    "Black_Hair Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee "
    "Gray_Hair Heavy_Makeup High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard "
    "Oval_Face Pale_Skin Pointy_Nose Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair "
    "Wavy_Hair Wearing_Earrings Wearing_Hat Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young"
).split()


def random_levels(shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


# ---------------------------------------------------------------- preprocessing


@pytest.mark.parametrize("n_bins", [2, 17, 32, 256])
def test_dequantize_range_and_exact_recovery(n_bins: int) -> None:
    levels = torch.randint(0, n_bins, (64, 3, 8, 8))
    x = dequantize(levels, n_bins, generator=torch.Generator().manual_seed(0))
    assert x.shape == levels.shape and x.dtype == torch.float32
    assert x.min() >= -0.5 and x.max() < 0.5
    assert torch.equal(torch.floor((x + 0.5) * n_bins).long(), levels)
    assert torch.equal(unit_to_levels(x, n_bins), levels)


def test_dequantize_recovers_levels_at_bin_edges(monkeypatch: pytest.MonkeyPatch) -> None:
    """u = 0 and the largest float32 below 1 are where float rounding could leave the bin."""
    for u in (0.0, float(np.nextafter(np.float32(1), np.float32(0)))):
        monkeypatch.setattr(
            torch, "rand", lambda shape, u=u, **kw: torch.full(shape, u, dtype=kw["dtype"])
        )
        for n_bins in (3, 17, 255, 256):
            levels = torch.arange(n_bins)
            x = dequantize(levels, n_bins)
            assert torch.equal(torch.floor((x + 0.5) * n_bins).long(), levels), (n_bins, u)
            assert x.min() >= -0.5 and x.max() < 0.5


def test_dequantize_generator_reproducible_and_uniform() -> None:
    levels = torch.full((20000,), 5)
    a = dequantize(levels, 17, generator=torch.Generator().manual_seed(3))
    b = dequantize(levels, 17, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    centre = levels_to_unit(levels[:1], 17)
    assert abs(a.mean() - centre) < 0.01 / 17  # uniform within the bin: mean at its centre
    assert (a.max() - a.min()) > 0.99 / 17


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_dequantize_on_cuda() -> None:
    levels = torch.randint(0, 256, (8, 3, 4, 4), device="cuda")
    x = dequantize(levels, 256, generator=torch.Generator("cuda").manual_seed(0))
    assert x.device == levels.device
    assert torch.equal(unit_to_levels(x, 256), levels)


def test_levels_to_unit_and_unit_to_image() -> None:
    levels = torch.arange(17)
    x = levels_to_unit(levels, 17)
    assert torch.allclose(x, (levels + 0.5) / 17 - 0.5)
    assert torch.allclose(unit_to_image(x, 17), levels / 16)
    extremes = unit_to_image(torch.tensor([-3.0, -0.5, 0.4999, 7.0]), 17)
    assert extremes.tolist() == [0.0, 0.0, 1.0, 1.0]


def test_reduce_bits() -> None:
    levels = torch.arange(256, dtype=torch.uint8)
    assert torch.equal(reduce_bits(levels, 5), levels // 8)
    assert reduce_bits(levels, 5).max() == 31
    with pytest.raises(ValueError):
        reduce_bits(levels, 9)


def test_import_needs_no_extras() -> None:
    code = (
        "import sys, glowflow.data as d; d.load_dataset('digits')[0]; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torchvision', 'PIL', 'scipy', 'sklearn'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------- digits


def test_digits_file() -> None:
    images, labels = read_digits_arrays()
    assert images.shape == (1797, 8, 8) and images.dtype == np.uint8
    assert labels.shape == (1797,) and labels.dtype == np.uint8
    assert images.min() == 0 and images.max() == 16
    assert np.bincount(labels, minlength=10).sum() == 1797 and set(labels) == set(range(10))


def test_digits_file_equals_sklearn() -> None:
    datasets = pytest.importorskip("sklearn.datasets")
    reference = datasets.load_digits()
    images, labels = read_digits_arrays()
    np.testing.assert_array_equal(images, reference.images)
    np.testing.assert_array_equal(labels, reference.target)


def test_digits_splits_partition_the_file_in_order() -> None:
    images, labels = read_digits_arrays()
    train, test = load_dataset("digits"), load_dataset("digits", split="test")
    assert (len(train), len(test)) == (1500, 297)
    assert train.shape == (1, 8, 8) and train.n_bins == 17 and train.num_classes == 10
    assert train.attribute_names is None
    held = load_dataset("digits", split="train", val_size=100)
    val = load_dataset("digits", split="val", val_size=100)
    assert (len(held), len(val)) == (1400, 100)
    parts = [held, val, test]
    stacked = torch.cat([torch.stack([d[i][0] for i in range(len(d))]) for d in parts])
    assert torch.equal(stacked[:, 0], torch.from_numpy(images))
    assert [d[i][1] for d in parts for i in range(len(d))] == labels.tolist()


def test_digits_batches_and_resize() -> None:
    levels, labels = next(iter(DataLoader(load_dataset("digits"), batch_size=64)))
    assert levels.shape == (64, 1, 8, 8) and levels.dtype == torch.uint8
    assert labels.shape == (64,) and labels.dtype == torch.int64
    big = load_dataset("digits", image_size=16)
    assert big.shape == (1, 16, 16) and big[0][0].shape == (1, 16, 16) and big[0][0].max() <= 16


def test_option_errors() -> None:
    with pytest.raises(ValueError, match="mnist"):
        load_dataset("imagenet")
    with pytest.raises(ValueError, match="valid splits"):
        load_dataset("digits", split="validation")
    with pytest.raises(ValueError, match="val_size"):
        load_dataset("digits", split="val")
    with pytest.raises(ValueError, match="hflip"):
        load_dataset("digits", split="test", hflip=True)
    with pytest.raises(ValueError, match="8-bit"):
        load_dataset("digits", n_bits=3)
    assert "folder:PATH" in DATASET_NAMES


def test_hflip_flips_about_half_the_time() -> None:
    torch.manual_seed(0)
    data = load_dataset("digits", hflip=True)
    plain = load_dataset("digits")[0][0]
    draws = [data[0][0] for _ in range(200)]
    flips = sum(torch.equal(levels, plain.flip(-1)) for levels in draws)
    assert 60 < flips < 140
    assert all(
        torch.equal(levels, plain) or torch.equal(levels, plain.flip(-1)) for levels in draws
    )


# ---------------------------------------------------------------- torchvision formats


def write_idx(path: Path, array: np.ndarray) -> None:
    """An idx-ubyte file: magic (0, 0, uint8 type 0x08, ndim), big-endian dims, data."""
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def write_mnist(root: Path, folder: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    parts = {
        "train": (random_levels((7, 28, 28), 1), np.arange(7, dtype=np.uint8) % 10),
        "t10k": (random_levels((3, 28, 28), 2), np.array([9, 0, 4], dtype=np.uint8)),
    }
    for prefix, (images, labels) in parts.items():
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
    return parts


@pytest.mark.parametrize(
    ("name", "folder"), [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")]
)
def test_mnist_formats(tmp_path: Path, name: str, folder: str) -> None:
    pytest.importorskip("torchvision")
    parts = write_mnist(tmp_path, folder)
    for split, prefix in (("train", "train"), ("test", "t10k")):
        data = load_dataset(name, tmp_path, split)
        images, labels = parts[prefix]
        assert len(data) == len(labels) and data.shape == (1, 28, 28) and data.n_bins == 256
        assert data.num_classes == 10
        for i in range(len(data)):
            levels, label = data[i]
            assert torch.equal(levels[0], torch.from_numpy(images[i])) and label == labels[i]
    val = load_dataset(name, tmp_path, "val", val_size=2)
    assert torch.equal(val[1][0][0], torch.from_numpy(parts["train"][0][6]))


def write_cifar10(root: Path) -> dict[str, list[tuple[np.ndarray, list[int]]]]:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batches: dict[str, list[tuple[np.ndarray, list[int]]]] = {"train": [], "test": []}
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for seed, name in enumerate(names):
        data, labels = random_levels((2, 3072), seed), [seed % 10, (seed + 3) % 10]
        entry = {
            "batch_label": name,
            "labels": labels,
            "data": data,
            "filenames": ["a.png", "b.png"],
        }
        (folder / name).write_bytes(pickle.dumps(entry, protocol=2))
        batches["test" if name == "test_batch" else "train"].append((data, labels))
    meta = {
        "num_cases_per_batch": 2,
        "label_names": [
            "airplane",
            "automobile",
            "bird",
            "cat",
            "deer",
            "dog",
            "frog",
            "horse",
            "ship",
            "truck",
        ],
        "num_vis": 3072,
    }
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return batches


def test_cifar10_format_and_bit_reduction(tmp_path: Path) -> None:
    batches = write_cifar10(tmp_path)
    for split in ("train", "test"):
        data = load_dataset("cifar10", tmp_path, split)
        rows = np.concatenate([d for d, _ in batches[split]])
        labels = [label for _, ls in batches[split] for label in ls]
        assert len(data) == len(rows) and data.shape == (3, 32, 32) and data.n_bins == 256
        assert data.class_names[:2] == ("airplane", "automobile")
        for i in range(len(data)):
            levels, label = data[i]
            # row layout: 1024 red, then 1024 green, then 1024 blue values, each row-major 32x32
            assert levels[1, 2, 5] == rows[i, 1024 + 2 * 32 + 5]
            assert torch.equal(levels.flatten(), torch.from_numpy(rows[i])) and label == labels[i]
    reduced = load_dataset("cifar10", tmp_path, n_bits=5)
    assert reduced.n_bins == 32
    assert torch.equal(reduced[3][0], load_dataset("cifar10", tmp_path)[3][0] >> 3)


def test_svhn_format(tmp_path: Path) -> None:
    scipy_io = pytest.importorskip("scipy.io")
    x = random_levels((32, 32, 3, 4), 5)
    y = np.array([[10], [1], [9], [10]], dtype=np.uint8)  # 10 stands for the digit zero
    scipy_io.savemat(tmp_path / "train_32x32.mat", {"X": x, "y": y})
    data = load_dataset("svhn", tmp_path)
    assert len(data) == 4 and data.shape == (3, 32, 32) and data.n_bins == 256
    assert [data[i][1] for i in range(4)] == [0, 1, 9, 0]
    assert torch.equal(data[2][0], torch.from_numpy(x[:, :, :, 2]).permute(2, 0, 1))
    with pytest.raises(FileNotFoundError, match="test_32x32.mat"):
        load_dataset("svhn", tmp_path, "test")


def write_celeba(root: Path) -> tuple[list[str], np.ndarray]:
    """Five 178x218 faces: blue centre square, red bands over the top and bottom 20 rows."""
    image_module = pytest.importorskip("PIL.Image")
    folder = root / "celeba"
    (folder / "img_align_celeba").mkdir(parents=True)
    names = [f"{i:06d}.jpg" for i in range(1, 6)]
    picture = np.zeros((218, 178, 3), dtype=np.uint8)
    picture[:, :] = (20, 40, 200)
    picture[:20], picture[198:] = (220, 10, 10), (220, 10, 10)
    for name in names:
        image_module.fromarray(picture).save(folder / "img_align_celeba" / name, quality=95)
    attributes = np.where(np.random.default_rng(0).random((5, 40)) < 0.5, -1, 1)
    lines = ["5", " ".join(CELEBA_ATTRIBUTES) + " "]
    lines += [name + " " + " ".join(f"{v:2d}" for v in row) for name, row in zip(names, attributes)]
    (folder / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    partition = [0, 0, 1, 2, 0]
    (folder / "list_eval_partition.txt").write_text(
        "".join(f"{n} {p}\n" for n, p in zip(names, partition))
    )
    return names, (attributes + 1) // 2


def test_celeba_format_crop_and_attributes(tmp_path: Path) -> None:
    _, attributes = write_celeba(tmp_path)
    train = load_dataset("celeba", tmp_path)
    assert len(train) == 3 and train.shape == (3, 178, 178) and train.n_bins == 256
    assert train.attribute_names == tuple(CELEBA_ATTRIBUTES) and train.num_classes is None
    levels, label = train[2]
    assert levels.shape == (3, 178, 178) and torch.equal(label, torch.from_numpy(attributes[4]))
    mean = levels.float().mean(dim=(1, 2))
    assert torch.allclose(mean, torch.tensor([20.0, 40.0, 200.0]), atol=3)  # red bands cropped off
    assert len(load_dataset("celeba", tmp_path, "val")) == 1
    small = load_dataset("celeba", tmp_path, "test", image_size=16, n_bits=5)
    levels, label = small[0]
    assert small.shape == (3, 16, 16) and levels.shape == (3, 16, 16) and small.n_bins == 32
    assert torch.equal(label, torch.from_numpy(attributes[3]))
    assert (levels[2].float() - 200 / 8).abs().max() <= 1
    batch_levels, batch_labels = next(iter(DataLoader(train, batch_size=3)))
    assert batch_levels.shape == (3, 3, 178, 178) and batch_labels.shape == (3, 40)


# ---------------------------------------------------------------- image folders and missing data


def test_image_folder_classes_and_round_trip(tmp_path: Path) -> None:
    image_module = pytest.importorskip("PIL.Image")
    pictures = {
        ("cat", "a.png"): random_levels((6, 4, 3), 0),
        ("cat", "b.png"): random_levels((6, 4, 3), 1),
        ("dog", "sub/c.png"): random_levels((6, 4, 3), 2),
    }
    for (label, name), picture in pictures.items():
        (tmp_path / label / name).parent.mkdir(parents=True, exist_ok=True)
        image_module.fromarray(picture).save(tmp_path / label / name)
    data = load_dataset(f"folder:{tmp_path}")
    assert len(data) == 3 and data.shape == (3, 6, 4) and data.n_bins == 256
    assert data.class_names == ("cat", "dog") and data.num_classes == 2
    for i, picture in enumerate(pictures.values()):
        levels, label = data[i]
        assert torch.equal(levels, torch.from_numpy(picture).permute(2, 0, 1)) and label == (i == 2)
    with pytest.raises(ValueError, match="no test split"):
        load_dataset(f"folder:{tmp_path}", split="test")


def test_image_folder_with_train_and_test_parts(tmp_path: Path) -> None:
    image_module = pytest.importorskip("PIL.Image")
    for part, count in (("train", 3), ("test", 2)):
        for label in ("x", "y"):
            (tmp_path / part / label).mkdir(parents=True)
            for i in range(count):
                image_module.fromarray(random_levels((4, 4), i)).save(
                    tmp_path / part / label / f"{i}.png"
                )
    train, test = (
        load_dataset(f"folder:{tmp_path}"),
        load_dataset(f"folder:{tmp_path}", split="test"),
    )
    assert (len(train), len(test)) == (6, 4) and train.class_names == test.class_names == ("x", "y")
    assert [test[i][1] for i in range(4)] == [0, 0, 1, 1]


def test_flat_greyscale_folder(tmp_path: Path) -> None:
    image_module = pytest.importorskip("PIL.Image")
    picture = random_levels((5, 7), 3)
    image_module.fromarray(picture).save(tmp_path / "only.png")
    data = load_dataset(f"folder:{tmp_path}")
    assert data.shape == (1, 5, 7) and data.num_classes is None and data[0][1] == 0
    assert torch.equal(data[0][0][0], torch.from_numpy(picture))


def test_mixed_size_folder(tmp_path: Path) -> None:
    image_module = pytest.importorskip("PIL.Image")
    image_module.fromarray(random_levels((8, 8, 3), 0)).save(tmp_path / "small.png")
    image_module.fromarray(random_levels((10, 12, 3), 1)).save(tmp_path / "wide.png")
    with pytest.raises(ValueError, match=r"small\.png is 8x8.*wide\.png is 12x10"):
        load_dataset(f"folder:{tmp_path}")
    data = load_dataset(f"folder:{tmp_path}", image_size=4)
    assert data.shape == (3, 4, 4) and {tuple(data[i][0].shape) for i in range(2)} == {(3, 4, 4)}


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist", "cifar10", "svhn", "celeba"])
def test_missing_data_names_the_path(tmp_path: Path, name: str) -> None:
    root = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match="download=True") as error:
        load_dataset(name, root)
    assert str(root) in str(error.value)


def test_missing_folder_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "absent")):
        load_dataset(f"folder:{tmp_path / 'absent'}")
