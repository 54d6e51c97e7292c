"""The experiment library functions on small untrained (randomized) Glows."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from checks import randomize_parameters
from glowflow import Flow, Glow
from glowflow.errors import ConfigError, MissingFileError, ModelFileError
from glowflow.experiments import (
    attribute_direction,
    class_grid,
    interpolate,
    load_direction,
    manipulate,
    reconstruct,
    save_direction,
    select_groups,
)
from glowflow.experiments.manipulate import check_direction

SHAPE = (1, 8, 8)


def make_flow(num_classes: int | None = None) -> Flow:
    """A two-level Glow on 8x8 images with every layer moved off the identity."""
    flow = Flow(Glow(SHAPE, 2, 2, hidden_channels=8, seed=0, num_classes=num_classes))
    randomize_parameters(flow, scale=0.05)
    return flow.eval()


@pytest.fixture
def images() -> torch.Tensor:
    return torch.rand(12, *SHAPE, generator=torch.Generator().manual_seed(1)) - 0.5


@pytest.mark.parametrize("num_classes", [None, 10])
def test_interpolation_endpoints_decode_to_the_inputs(images, num_classes):
    flow = make_flow(num_classes)
    labels = (torch.tensor(3), torch.tensor(7)) if num_classes else (None, None)
    path = interpolate(flow, images[0], images[1], steps=6, y_a=labels[0], y_b=labels[1])
    assert path.shape == (6, *SHAPE)
    torch.testing.assert_close(path[0], images[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(path[-1], images[1], atol=1e-5, rtol=0)
    assert (path[2] - images[0]).abs().max() > 1e-3


def test_interpolation_needs_two_steps_and_labels_when_conditional(images):
    with pytest.raises(ValueError, match="steps"):
        interpolate(make_flow(), images[0], images[1], steps=1)
    with pytest.raises(ValueError, match="class-conditional"):
        interpolate(make_flow(10), images[0], images[1])


def test_direction_of_identical_groups_is_zero(images):
    flow = make_flow()
    direction = attribute_direction(flow, images, images.clone(), batch_size=5)
    assert [tuple(d.shape) for d in direction] == [tuple(s) for s in flow.latent_shapes]
    assert all(bool((d == 0).all()) for d in direction)


def test_manipulation_at_strength_zero_reproduces_the_image(images):
    flow = make_flow()
    direction = attribute_direction(flow, images[:6], images[6:])
    grid = manipulate(flow, images[:2], direction, strengths=[-1.0, 0.0, 2.0])
    assert grid.shape == (2, 3, *SHAPE)
    torch.testing.assert_close(grid[:, 1], images[:2], atol=1e-5, rtol=0)
    assert (grid[:, 2] - grid[:, 0]).abs().max() > 1e-3
    with pytest.raises(ValueError, match="level shapes"):
        manipulate(flow, images[:2], direction[:1])


def test_select_groups_for_classes_and_attributes():
    classes = torch.tensor([0, 3, 3, 8, 1])
    positive, negative = select_groups(classes, "3")
    assert positive.tolist() == [False, True, True, False, False]
    assert negative.tolist() == [True, False, False, True, True]
    _, negative = select_groups(classes, "3", negative="8")
    assert negative.tolist() == [False, False, False, True, False]
    attributes = torch.tensor([[1, 0], [0, 1], [1, 1]])
    positive, negative = select_groups(attributes, "Smiling", attribute_names=["Male", "Smiling"])
    assert positive.tolist() == [False, True, True] and negative.tolist() == [True, False, False]
    with pytest.raises(ValueError, match="unknown attribute"):
        select_groups(attributes, "Bald", attribute_names=["Male", "Smiling"])
    with pytest.raises(ValueError, match="empty"):
        select_groups(classes, "5")


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_direction_files_round_trip(tmp_path, suffix):
    direction = [torch.randn(2, 4, 4), torch.randn(8, 2, 2)]
    path = tmp_path / f"direction{suffix}"
    save_direction(direction, path, {"attribute": "3"})
    loaded, metadata = load_direction(path)
    assert metadata == {"attribute": "3"}
    for saved, read in zip(direction, loaded):
        torch.testing.assert_close(read, saved, atol=0, rtol=0)


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_bad_direction_files_are_named_errors(tmp_path, suffix):
    missing = tmp_path / f"missing{suffix}"
    with pytest.raises(MissingFileError, match=f"no direction file at {missing}"):
        load_direction(missing)
    garbage = tmp_path / f"garbage{suffix}"
    garbage.write_bytes(b"not a direction")
    with pytest.raises(ModelFileError, match=f"{garbage} is not a direction file"):
        load_direction(garbage)
    other = tmp_path / f"other{suffix}"
    if suffix == ".pt":
        torch.save({"weights": torch.zeros(2)}, other)
    else:
        from safetensors.torch import save_file

        save_file({"weights": torch.zeros(2)}, str(other))
    with pytest.raises(ModelFileError, match=f"{other} is not a direction file"):
        load_direction(other)


def test_a_direction_of_another_model_names_its_file():
    with pytest.raises(ConfigError, match=r"^direction has level shapes \[\(2, 2, 2\)\]"):
        check_direction(make_flow(), [torch.zeros(2, 2, 2)])
    with pytest.raises(ModelFileError, match="direction file d.pt has level shapes"):
        check_direction(make_flow(), [torch.zeros(2, 2, 2)], Path("d.pt"))


def test_reconstruction_is_exact_in_float_precision(images):
    result = reconstruct(make_flow(10), images, torch.arange(12) % 10, batch_size=5)
    assert result.images.shape == images.shape and result.errors.shape == (12,)
    assert result.max_abs_error < 1e-5


def test_class_conditional_log_prob_depends_on_the_label(images):
    flow = make_flow(10)
    log_probs = [flow.log_prob(images[:4], torch.full((4,), k)) for k in (2, 5)]
    assert (log_probs[0] - log_probs[1]).abs().min() > 1e-4


def test_class_grid_has_one_row_per_class():
    grid = class_grid(
        make_flow(10),
        samples_per_class=3,
        classes=[1, 4],
        generator=torch.Generator().manual_seed(0),
    )
    assert grid.shape == (2, 3, *SHAPE) and torch.isfinite(grid).all()
    with pytest.raises(ValueError, match="class-conditional"):
        class_grid(make_flow())
