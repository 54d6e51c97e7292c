"""Model folders under hostile or damaged input (issue 22): every case is one clear error that
names the file and the cause, raised before anything large is built, or the right result."""

import json
import struct
import time

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import glowflow as gf
from glowflow.errors import ConfigError, MissingFileError, ModelFileError
from glowflow.families import FAMILIES, build
from glowflow.store import DataSpec, load_model, save_model
from glowflow.store.record import CONFIG_FILE, WEIGHTS_FILE
from glowflow.store.signed_weights import tensors_sha256


@pytest.fixture(params=sorted(FAMILIES))
def folder(request, tmp_path):
    """A saved model folder of each family."""
    template = FAMILIES[request.param].template
    (shape_field,) = template.fields_with_role("shape")
    flow = build(template.replace(**{shape_field: (1, 8, 8)}, seed=0))
    flow.initialize(torch.rand(32, 1, 8, 8) - 0.5)
    return save_model(flow.eval(), tmp_path / request.param, DataSpec("digits", (1, 8, 8), 17))


def edit_record(folder, change):
    path = folder / CONFIG_FILE
    record = json.loads(path.read_text())
    change(record)
    path.write_text(json.dumps(record))
    return path


def edit_weights(path, change_tensors=lambda t: t, change_metadata=lambda m: m):
    with safe_open(str(path), "pt") as handle:
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}
        metadata = handle.metadata()
    save_file(change_tensors(tensors), str(path), change_metadata(metadata))


def test_flipped_bytes_are_named_as_corrupt(folder):
    path = folder / WEIGHTS_FILE
    data = bytearray(path.read_bytes())
    header_end = 8 + struct.unpack("<Q", data[:8])[0]
    data[-1] ^= 0x01  # the last tensor byte
    assert len(data) > header_end
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match=rf"^{path} is corrupt"):
        load_model(folder)


def test_weights_without_their_sha256_are_refused(folder):
    path = folder / WEIGHTS_FILE
    edit_weights(path, change_metadata=lambda m: {k: v for k, v in m.items() if k != "sha256"})
    with pytest.raises(ModelFileError, match=rf"^{path} lacks the sha256"):
        load_model(folder)


def test_unknown_config_keys_and_wrong_types_name_the_file(folder):
    path = edit_record(folder, lambda r: r["config"].update(bogus=1))
    with pytest.raises(ConfigError, match=rf"^{path}: unknown .* option\(s\) \['bogus'\]"):
        load_model(folder)
    edit_record(folder, lambda r: r["config"].pop("bogus"))
    (name, value) = next(
        (k, v)
        for k, v in json.loads(path.read_text())["config"].items()
        if isinstance(v, int) and not isinstance(v, bool)
    )
    edit_record(folder, lambda r: r["config"].update({name: "many"}))
    with pytest.raises(ConfigError, match=rf"^{path}: .*{name} must be an integer"):
        load_model(folder)


def test_an_unknown_family_is_named(folder):
    path = edit_record(folder, lambda r: r.update(family="wavenet"))
    with pytest.raises(ConfigError, match=rf"^{path}: unknown flow family 'wavenet'"):
        load_model(folder)


def test_a_missing_weights_file_is_named(folder):
    (folder / WEIGHTS_FILE).unlink()
    with pytest.raises(MissingFileError, match=str(folder / WEIGHTS_FILE)):
        load_model(folder)


def test_a_newer_format_says_to_upgrade(folder):
    path = edit_record(folder, lambda r: r.update(format="glowflow.model/3"))
    with pytest.raises(ModelFileError, match=rf"^{path} was written by a newer glowflow"):
        load_model(folder)


def test_a_link_out_of_the_folder_is_refused(folder, tmp_path):
    outside = tmp_path / "elsewhere.safetensors"
    (folder / WEIGHTS_FILE).rename(outside)
    (folder / WEIGHTS_FILE).symlink_to(outside)
    with pytest.raises(ModelFileError, match="outside the model folder"):
        load_model(folder)


def test_tensors_of_another_dtype_are_named(folder):
    path = folder / WEIGHTS_FILE

    def to_integers(tensors):
        name = next(k for k, v in tensors.items() if v.is_floating_point())
        tensors[name] = tensors[name].to(torch.int32)
        return tensors

    edit_weights(path, to_integers, lambda m: {**m, "sha256": ""})
    tensors = {}
    with safe_open(str(path), "pt") as handle:
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}
        metadata = handle.metadata()
    save_file(tensors, str(path), {**metadata, "sha256": tensors_sha256(tensors)})
    with pytest.raises(ModelFileError, match=rf"^{path}: tensor .* has dtype torch.int32"):
        load_model(folder)


def test_an_absurd_glow_is_refused_from_the_header_without_allocating(tmp_path):
    flow = gf.Flow(gf.Glow((1, 8, 8), 2, 2, hidden_channels=8, seed=0))
    flow.initialize(torch.rand(32, 1, 8, 8) - 0.5)
    folder = save_model(flow.eval(), tmp_path / "m", DataSpec("digits", (1, 8, 8), 17))
    path = edit_record(folder, lambda r: r["config"].update(hidden_channels=1_000_000_000))
    start = time.perf_counter()
    with pytest.raises(ModelFileError, match=rf"^{path} does not describe .*{WEIGHTS_FILE}"):
        load_model(folder)
    assert time.perf_counter() - start < 10  # 72 GB were never allocated


def test_tensors_missing_or_misshapen_against_the_config_are_named(folder):
    path = folder / WEIGHTS_FILE

    def drop_one(tensors):
        del tensors[sorted(tensors)[0]]
        return tensors

    edit_weights(path, drop_one)
    with safe_open(str(path), "pt") as handle:
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}
        metadata = handle.metadata()
    save_file(tensors, str(path), {**metadata, "sha256": tensors_sha256(tensors)})
    with pytest.raises(ModelFileError, match=str(path)):
        load_model(folder)
