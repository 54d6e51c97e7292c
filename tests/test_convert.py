"""Converters, proven against fixtures that the other implementations' own code wrote
(``scripts/fixtures/make_*.py``, run by hand; the peers are not needed here).

For every fixture: glowflow's log-likelihoods of the converted model match the source's to
1e-5 relative in float32 and 1e-10 in float64 (the checkpoint's tensors taken to float64, as the
source's float64 run took them; for TFP, whose float64 Glow has float64 variables, that Glow's
own ``variables64.npz``), ``decode(encode(x))`` gives ``x`` back, and decoding the source's
standard normal draws at temperature ``T`` gives the source's samples.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from glowflow.cli import main
from glowflow.convert import convert
from glowflow.convert.tfp_order import from_tfp_latent
from glowflow.errors import GlowflowError, ModelFileError
from glowflow.store import load_model

FIXTURES = Path(__file__).parent / "fixtures"
CASES = [
    (source, case.name)
    for source in ("y0ast", "rosinality", "chaiyujin", "tfp")
    if (FIXTURES / source).is_dir()
    for case in sorted((FIXTURES / source).iterdir())
    if case.is_dir()
]
FLOAT64_TOLERANCE = {("rosinality", "additive_no_lu"): 1e-8}
"""Where the source does not run in float64 throughout: rosinality's plain ``InvConv2d``
rounds ``log|det W|`` to float32 (``slogdet(...)[1].float()``) even in a float64 run."""
CHECKPOINTS = {
    "y0ast": "model.pt",
    "rosinality": "model.pt",
    "chaiyujin": "model.pkg",
    "tfp": "variables.npz",
}


def expected(folder: Path) -> tuple[dict[str, torch.Tensor], dict]:
    with safe_open(str(folder / "expected.safetensors"), "pt") as handle:
        return (
            {key: handle.get_tensor(key) for key in handle.keys()},
            json.loads(handle.metadata()["meta"]),
        )


def options(source: str, folder: Path, meta: dict) -> dict:
    if source == "rosinality":
        return {"image_size": meta["image_size"]}
    if (folder / "hparams.json").is_file():
        return {"hparams": folder / "hparams.json"}
    return {}


def as_float64(value):
    """A checkpoint's contents with every floating tensor in float64."""
    if isinstance(value, dict):
        return {key: as_float64(item) for key, item in value.items()}
    if torch.is_tensor(value) and value.is_floating_point():
        return value.double()
    return value


def float64_checkpoint(source: str, path: Path, tmp_path: Path) -> Path:
    """The source's float64 checkpoint: TFP's float64 Glow wrote its own, the PyTorch sources'
    float64 runs take the checkpoint's tensors to float64."""
    if source == "tfp":
        return path.with_name("variables64.npz")
    out = tmp_path / path.name
    torch.save(as_float64(torch.load(path, weights_only=True)), out)
    return out


def draws(
    tensors: dict[str, torch.Tensor], temperature: float, shapes: list[tuple[int, ...]]
) -> list[torch.Tensor]:
    """The source's standard normal draws times ``temperature`` as glowflow's per-level
    latents: ``eps_0 ... eps_top`` as they are, TFP's rank-1 ``z_tfp`` through
    :func:`glowflow.convert.tfp_order.from_tfp_latent`."""
    if "z_tfp" in tensors:
        return from_tfp_latent(temperature * tensors["z_tfp"], shapes)
    names = sorted(k for k in tensors if k.startswith("eps_") and k != "eps_top")
    return [temperature * tensors[k] for k in [*names, "eps_top"]]


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a - b).abs() / b.abs()).max())


@pytest.mark.parametrize("source,case", CASES)
def test_converted_model_matches_the_source(source: str, case: str, tmp_path: Path) -> None:
    folder = FIXTURES / source / case
    tensors, meta = expected(folder)
    checkpoint = folder / CHECKPOINTS[source]
    converted = convert(source, checkpoint, **options(source, folder, meta))
    flow = converted.flow()
    y = tensors.get("y") if converted.glow.num_classes is not None else None
    offset = meta.get("log_px_offset", 0.0)  # the Jacobian of an input-range map
    with torch.no_grad():
        log_px = flow.log_prob(tensors["x"], y) - offset
        assert relative(log_px, tensors["log_px"]) < 1e-5
        zs = flow.encode(tensors["x"], y)
        assert torch.allclose(flow.decode(zs, y), tensors["x"], rtol=0, atol=2e-6)
        latents = draws(tensors, meta["temperature"], flow.latent_shapes)
        samples = flow.decode(latents, tensors.get("sample_y") if y is not None else None)
        samples = samples * meta.get("sample_scale", 1.0) + meta.get("sample_offset", 0.0)
        assert torch.allclose(samples, tensors["samples"], rtol=0, atol=2e-5)
        flow64 = convert(
            source,
            float64_checkpoint(source, checkpoint, tmp_path),
            **options(source, folder, meta),
        ).flow()
        y64 = None if y is None else y.double() if y.is_floating_point() else y
        log_px64 = flow64.log_prob(tensors["x64"], y64) - offset
        assert relative(log_px64, tensors["log_px64"]) < FLOAT64_TOLERANCE.get(
            (source, case), 1e-10
        )
        x64 = flow64.decode(flow64.encode(tensors["x64"], y64), y64)
        assert torch.allclose(x64, tensors["x64"], rtol=0, atol=1e-12)


def test_convert_command_writes_a_pretrained_folder(tmp_path: Path) -> None:
    folder = FIXTURES / "y0ast" / "affine_lu_top_ycond"
    out = tmp_path / "y0ast-tiny"
    assert main(["convert", "--from", "y0ast", str(folder / "model.pt"), "--out", str(out)]) == 0
    loaded = load_model(out)
    tensors, _ = expected(folder)
    assert (
        relative(loaded.flow.log_prob(tensors["x"], tensors["y"]).detach(), tensors["log_px"])
        < 1e-5
    )
    assert loaded.data.dataset == "cifar10" and loaded.data.n_bins == 256
    assert loaded.config.num_classes == 10
    card = (out / "README.md").read_text()
    assert "glowflow convert --from y0ast" in card or "y0ast" in card


def test_foreign_files_are_refused_naming_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "model.pt"
    torch.save({"something.else": torch.zeros(2)}, bad)
    with pytest.raises(RuntimeError, match=str(bad)):
        convert("y0ast", bad)
    with pytest.raises(RuntimeError, match=str(bad)):
        convert("rosinality", bad)
    code = tmp_path / "code.pt"
    torch.save({"weights": torch.zeros(2), "object": pytest.raises}, code)  # pickled code
    with pytest.raises(RuntimeError, match="never loaded"):
        convert("y0ast", code)


TFP_CASES = sorted(case for case in (FIXTURES / "tfp").iterdir() if case.is_dir())
HAS_TFP = importlib.util.find_spec("tensorflow_probability") is not None


def floating_dtypes(tensors: dict[str, torch.Tensor]) -> set[torch.dtype]:
    return {t.dtype for t in tensors.values() if t.is_floating_point()}


@pytest.mark.parametrize("folder", TFP_CASES, ids=lambda case: case.name)
def test_tfp_float64_glow_converts_to_a_float64_folder(folder: Path, tmp_path: Path) -> None:
    """Every tensor of a float64 ``tfb.Glow`` stays float64: in the conversion, in the folder
    ``glowflow convert`` writes, and so in the log-likelihoods (TFP's float64 ones to 1e-10)."""
    converted = convert("tfp", folder / "variables64.npz")
    assert floating_dtypes(converted.tensors) == {torch.float64}
    out = tmp_path / "tfp64"
    assert (
        main(["convert", "--from", "tfp", str(folder / "variables64.npz"), "--out", str(out)]) == 0
    )
    with safe_open(str(out / "model.safetensors"), "pt") as handle:
        written = {key: handle.get_tensor(key) for key in handle.keys()}
    assert floating_dtypes(written) == {torch.float64}
    assert all(torch.equal(written[key], converted.tensors[key]) for key in written)
    tensors, _ = expected(folder)
    with torch.no_grad():
        assert relative(converted.flow().log_prob(tensors["x64"]), tensors["log_px64"]) < 1e-10


@pytest.mark.skipif(not HAS_TFP, reason="reading a tf.train.Checkpoint needs the tfp extra")
@pytest.mark.parametrize("precision", ["", "64"])
@pytest.mark.parametrize("folder", TFP_CASES, ids=lambda case: case.name)
def test_tfp_checkpoint_reads_as_its_variables(folder: Path, precision: str) -> None:
    """A ``tf.train.Checkpoint`` converts to exactly what the ``.npz`` of the same Glow does,
    in the checkpoint's own dtype (float32 or float64)."""
    hparams = folder / "hparams.json"
    from_checkpoint = convert("tfp", folder / f"checkpoint{precision}" / "glow-1", hparams=hparams)
    from_npz = convert("tfp", folder / f"variables{precision}.npz")
    assert floating_dtypes(from_checkpoint.tensors) == floating_dtypes(from_npz.tensors)
    assert from_checkpoint.tensors.keys() == from_npz.tensors.keys()
    for key, value in from_npz.tensors.items():
        assert torch.equal(from_checkpoint.tensors[key], value), key


@pytest.mark.skipif(not HAS_TFP, reason="reading a tf.train.Checkpoint needs the tfp extra")
@pytest.mark.parametrize(
    "case, message",
    [
        ("garbage index", "cannot be read: not an sstable"),
        ("garbage data", "cannot be read: .*checksum"),
        ("truncated data", "cannot be read: Read less bytes"),
        ("other hparams", "does not hold a tfb.Glow with the --hparams' arguments"),
    ],
)
def test_a_tfp_checkpoint_tensorflow_cannot_read_is_one_line(
    case: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A checkpoint whose ``.index`` or ``.data`` file is corrupt or cut short, or one of
    another Glow than ``--hparams`` describes: one line naming the prefix, no output folder."""
    import shutil

    folder = tmp_path / "case"
    shutil.copytree(TFP_CASES[0], folder)
    prefix = folder / "checkpoint" / "glow-1"
    index, data = prefix.with_name("glow-1.index"), prefix.with_name("glow-1.data-00000-of-00001")
    if case == "garbage index":
        index.write_bytes(bytes(range(256)) * 2)
    elif case == "garbage data":
        data.write_bytes(bytes(reversed(range(256))) * (data.stat().st_size // 256 + 1))
    elif case == "truncated data":
        data.write_bytes(data.read_bytes()[:100])
    else:
        hparams = json.loads((folder / "hparams.json").read_text())
        hparams["num_steps_per_block"] += 1
        (folder / "hparams.json").write_text(json.dumps(hparams))
    out = tmp_path / "out"
    argv = ["convert", "--from", "tfp", str(prefix), "--hparams", str(folder / "hparams.json")]
    assert main([*argv, "--out", str(out)]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "glowflow convert" in line]
    assert len(errors) == 1 and str(prefix) in errors[0], errors
    assert re.search(message, errors[0]), errors[0]
    assert not out.exists()


@pytest.mark.skipif(HAS_TFP, reason="the tfp extra is installed")
def test_tfp_checkpoint_without_the_extra_names_it(capsys: pytest.CaptureFixture[str]) -> None:
    folder = TFP_CASES[0]
    prefix, hparams = folder / "checkpoint64" / "glow-1", folder / "hparams.json"
    with pytest.raises(ModuleNotFoundError, match=r"glowflow\[tfp\]"):
        convert("tfp", prefix, hparams=hparams)
    out = ["--out", str(folder / "never-written")]
    assert main(["convert", "--from", "tfp", str(prefix), "--hparams", str(hparams), *out]) == 2
    assert "pip install 'glowflow[tfp]'" in capsys.readouterr().err.splitlines()[-1]


def test_tfp_checkpoint_dtype_is_its_floating_variables_one() -> None:
    """What a checkpoint's dtype map (``name -> dtype``) makes the Glow be built in."""
    from glowflow.convert.tfp_variables import float_dtype

    dtypes = {"lower_upper": "float64", "permutation": "int32", "_initialized": "bool"}
    assert float_dtype({**dtypes, "save_counter": "int64"}, "ckpt") == "float64"
    assert float_dtype({**dtypes, "lower_upper": "float32"}, "ckpt") == "float32"
    with pytest.raises(ModelFileError, match=r"ckpt-1: .*\['float32', 'float64'\]"):
        float_dtype({**dtypes, "kernel": "float32"}, "ckpt-1")
    with pytest.raises(ModelFileError, match="ckpt-1: .*none"):
        float_dtype({"permutation": "int32"}, "ckpt-1")


class _RunsCode:
    def __reduce__(self):
        import os

        return (os.system, ("echo this must never run",))


def write_foreign_file(path: Path, case: str) -> bool:
    """Make ``path`` the hostile file ``case`` shared by every source: ``"empty"``,
    ``"directory"``, ``"garbage"`` (random bytes) or ``"foreign zip"`` (a zip of a text
    file); ``False`` (nothing written) for any other case."""
    import zipfile

    if case == "empty":
        path.write_bytes(b"")
    elif case == "directory":
        path.mkdir()
    elif case == "garbage":
        path.write_bytes(bytes(range(256)) * 4)
    elif case == "foreign zip":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("notes.txt", "not a checkpoint")
    else:
        return False
    return True


@pytest.mark.parametrize("source", ["y0ast", "rosinality", "chaiyujin", "tarflow"])
@pytest.mark.parametrize("case", ["empty", "directory", "foreign zip", "garbage", "code"])
def test_every_torch_source_refuses_a_hostile_file_in_one_line(source, case, tmp_path, capsys):
    """An empty file, a directory, a zip that is not a torch file, random bytes and a pickle
    that runs code: one line naming the file and the cause, never torch's advice to retry
    with weights_only=False, and no output folder."""
    import pickle

    from glowflow.cli import main

    path = tmp_path / "model.pt"
    if not write_foreign_file(path, case):
        path.write_bytes(pickle.dumps(_RunsCode()))
    out = tmp_path / "out"
    assert main(["convert", "--from", source, str(path), "--out", str(out)]) == 2
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith("glowflow convert:")]
    assert len(errors) == 1 and str(path) in errors[0], captured.err
    assert "weights_only" not in captured.err and "must never run" not in captured.out
    assert not out.exists()


ALTERED_SOURCES = {
    "y0ast": ("y0ast/affine_lu_top_ycond/model.pt", "flow.layers.5.invconv.lower"),
    "rosinality": (
        "rosinality/affine_lu/model.pt",
        "module.blocks.1.flows.0.coupling.net.2.weight",
    ),
    "chaiyujin": ("chaiyujin/affine_top/model.pkg", "flow.layers.3.conv.logs"),
    "tarflow": ("tarflow/conditional/model.pth", "blocks.1.attn_blocks.0.attention.qkv.weight"),
    "tfp": ("tfp/default_networks/variables.npz", "level1/step0/coupling/conv1/kernel"),
}
"""For every source: a fixture checkpoint and a tensor in the middle of its layout."""


def read_source(checkpoint: Path) -> dict:
    """A fixture checkpoint's contents: an ``.npz``'s arrays as tensors, else the torch file."""
    if checkpoint.suffix == ".npz":
        import numpy as np

        with np.load(checkpoint) as arrays:
            return {key: torch.from_numpy(arrays[key]) for key in arrays.files}
    return torch.load(checkpoint, weights_only=True)


def write_source(contents: dict, path: Path) -> Path:
    """:func:`read_source`'s inverse, the file's kind by its suffix."""
    if path.suffix == ".npz":
        import numpy as np

        np.savez(path, **{key: value.numpy() for key, value in contents.items()})
    else:
        torch.save(contents, path)
    return path


def altered(checkpoint: Path, key: str, change: str, out: Path) -> Path:
    """``checkpoint`` written to ``out`` with tensor ``key`` of its state dict (chaiyujin's
    ``graph`` inside its package) ``missing``, ``grown`` (one more entry on every axis),
    ``NaN`` (its first entry), or with an ``extra`` tensor ``surplus.weight`` beside it."""
    contents = read_source(checkpoint)
    state = dict(contents.get("graph", contents))
    if change == "missing":
        del state[key]
    elif change == "extra":
        state["surplus.weight"] = torch.zeros(3)
    elif change == "grown":
        state[key] = torch.zeros(*(n + 1 for n in state[key].shape), dtype=state[key].dtype)
    else:
        state[key] = state[key].clone().contiguous()
        state[key].view(-1)[0] = float("nan")
    return write_source({**contents, "graph": state} if "graph" in contents else state, out)


def refusal(source: str, path: Path, **settings) -> str:
    """The one line converting ``path`` from ``source`` is refused with (what ``glowflow
    convert`` prints, exit 2, before any output folder is written)."""
    with pytest.raises(GlowflowError) as refused:
        convert(source, path, **settings)
    line = str(refused.value)
    assert "\n" not in line and str(path) in line, line
    return line


@pytest.mark.parametrize("change", ["missing", "extra", "grown", "NaN"])
@pytest.mark.parametrize("source", sorted(ALTERED_SOURCES))
def test_every_source_refuses_an_altered_state_dict_in_one_line(source, change, tmp_path):
    """A missing, an extra, a wrongly shaped and a NaN tensor in a real checkpoint: one line
    naming the file and that tensor (by the source's own name).
    ``tests/test_convert_slow.py`` does this for every tensor of every source."""
    checkpoint = FIXTURES / ALTERED_SOURCES[source][0]
    key = ALTERED_SOURCES[source][1]
    path = altered(checkpoint, key, change, tmp_path / checkpoint.name)
    folder = checkpoint.parent
    line = refusal(source, path, **options(source, folder, expected(folder)[1]))
    named = "surplus.weight" if change == "extra" else key.removeprefix("module.")
    assert f"'{named}'" in line, line
    assert {"grown": "shape", "NaN": "non-finite" if source == "tarflow" else "NaN"}.get(
        change, ""
    ) in line


@pytest.mark.parametrize(
    "case", ["empty", "directory", "garbage", "foreign zip", "pickled array", "text array"]
)
def test_tfp_variables_file_that_is_not_one_is_refused_in_one_line(case, tmp_path):
    """An ``.npz`` that is empty, a directory, random bytes, a zip of something else, or holds
    a pickled object array or text (numbers only are read, never pickles): one line naming
    the file and the cause, never numpy's advice to allow pickles."""
    import numpy as np

    path = tmp_path / "variables.npz"
    if not write_foreign_file(path, case):
        pickled = np.array([_RunsCode()], dtype=object)
        text = np.array(["eight", "eight", "three"])
        np.savez(path, output_shape=pickled if case == "pickled array" else text)
    line = refusal("tfp", path)
    assert "allow_pickle" not in line and (case != "directory" or "is a directory" in line)


@pytest.mark.parametrize("case", ["directory", "no index"])
def test_tfp_checkpoint_prefix_that_is_not_one_is_refused_before_tensorflow(case, tmp_path):
    """A directory, or a file without the ``.index`` a ``tf.train.Checkpoint`` prefix has, is
    named in one line before TensorFlow is needed (so also without the tfp extra)."""
    path = tmp_path / "glow-1"
    if case == "directory":
        path.mkdir()
    else:
        path.write_bytes(bytes(range(256)))
    line = refusal("tfp", path, hparams=TFP_CASES[0] / "hparams.json")
    assert ("is a directory" if case == "directory" else "glow-1.index does not exist") in line
