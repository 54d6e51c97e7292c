"""A ``tfb.Glow``'s variables by structural name, for :mod:`glowflow.convert.tfp` (needs only
numpy here, and TensorFlow Probability where a live Glow or a checkpoint is read: the ``tfp``
extra). Importing this module needs neither torch nor TensorFlow.

Names (``L`` levels image side first, ``K`` steps in the order they act on an image, each a
numpy array): ``output_shape`` ``(H, W, C)``; ``level{l}/step{k}/actnorm/loc`` and
``.../actnorm/log_scale`` (the ActNorm acts as ``(x + loc) * exp(log_scale)`` towards the
latent); ``.../conv1x1/lower_upper`` and ``.../conv1x1/permutation`` (``ScaleMatvecLU``'s
packed LU factors and row permutation); ``.../coupling/conv{0,1,2}/kernel`` (HWIO) and
``.../bias`` (``GlowDefaultNetwork``'s three convolutions); ``level{l}/exit/kernel`` and
``.../bias`` (``GlowDefaultExitNetwork``), for levels with an exit.

The floating arrays keep the ``tfb.Glow``'s dtype: float32 by default, float64 for a Glow built
under ``set_floatx("float64")`` (TFP's Glow takes its dtype from its Keras networks' variables).
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from ..errors import ModelFileError

FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")
"""TensorFlow's floating dtype names, as a checkpoint's dtype map gives them."""


def walk(bijector: Any) -> Iterator[Any]:
    """Every bijector inside ``bijector``, depth first, in the order of its chains (for a
    ``tfb.Glow``: from the image side)."""
    yield bijector
    inner = getattr(bijector, "bijectors", None)
    if inner:
        for child in inner:
            yield from walk(child)
    elif hasattr(bijector, "bijector"):
        yield from walk(bijector.bijector)


def _kind(weight: Any) -> str:
    return "kernel" if len(weight.shape) == 4 else "bias"


def glow_variables(glow: Any, output_shape: Sequence[int]) -> dict[str, np.ndarray]:
    """The variables of a live ``tfb.Glow`` (built with TFP's default networks) by name."""
    from tensorflow_probability.python.bijectors import glow as tfp_glow

    out = {"output_shape": np.array(output_shape, dtype=np.int64)}
    blocks = [b for b in walk(glow) if isinstance(b, tfp_glow.GlowBlock)]
    exits = [b for b in walk(glow) if isinstance(b, tfp_glow.ExitBijector)]
    for level, block in enumerate(blocks):
        norms = [b for b in walk(block) if isinstance(b, tfp_glow.ActivationNormalization)]
        convs = [b for b in walk(block) if isinstance(b, tfp_glow.OneByOneConv)]
        layers = [
            b.coupling_bijector_layer for b in walk(block) if hasattr(b, "coupling_bijector_layer")
        ]
        for step, (norm, conv, layer) in enumerate(zip(norms, convs, layers)):
            prefix = f"level{level}/step{step}"
            out[f"{prefix}/actnorm/loc"] = norm._m.numpy()
            out[f"{prefix}/actnorm/log_scale"] = norm._s.pretransformed_input.numpy()
            out[f"{prefix}/conv1x1/lower_upper"] = conv._bijector.lower_upper.numpy()
            out[f"{prefix}/conv1x1/permutation"] = conv._bijector.permutation.numpy()
            for index, weight in enumerate(layer.weights):
                out[f"{prefix}/coupling/conv{index // 2}/{_kind(weight)}"] = weight.numpy()
    for level, exit in enumerate(exits):
        for weight in exit.trainable_variables:
            out[f"level{level}/exit/{_kind(weight)}"] = weight.numpy()
    return out


def float_dtype(dtypes: Mapping[str, str], prefix: str) -> str:
    """The one floating dtype among a checkpoint's variables (``name -> dtype name``, as
    ``tf.train.load_checkpoint(prefix).get_variable_to_dtype_map()`` gives them); a
    :class:`~glowflow.errors.ModelFileError` naming ``prefix`` when there is none or several."""
    found = sorted({dtype for dtype in dtypes.values() if dtype in FLOAT_DTYPES})
    if len(found) != 1:
        raise ModelFileError(
            f"{prefix}: a tfb.Glow checkpoint has its floating variables in one dtype, "
            f"this one has {found or 'none'}"
        )
    return found[0]


def checkpoint_variables(prefix: str, arguments: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The variables of a ``tf.train.Checkpoint(glow=...)`` at ``prefix``: a ``tfb.Glow`` is
    built from ``arguments`` (``output_shape`` HWC, ``num_glow_blocks``,
    ``num_steps_per_block``, ``grab_after_block``, ``num_hidden`` of the default coupling
    network) in the checkpoint's floating dtype (:func:`float_dtype`; Keras' ``floatx`` set to
    it while the Glow is built), the checkpoint restored into it (every variable must match),
    and read. A checkpoint TensorFlow cannot read, or one whose variables are not such a
    Glow's, is a :class:`~glowflow.errors.ModelFileError` of one line naming the prefix."""
    from tensorflow.errors import OpError

    try:
        return _restored_variables(prefix, arguments)
    except (OpError, IndexError) as error:  # a bad .index, a corrupt or truncated .data file
        raise ModelFileError(
            f"{prefix}: the TensorFlow checkpoint cannot be read: {_first_line(error)}"
        ) from None
    except AssertionError as error:  # restored, but its variables are not this Glow's
        raise ModelFileError(
            f"{prefix}: the checkpoint does not hold a tfb.Glow with the --hparams' arguments: "
            f"{_first_line(error)}"
        ) from None


def _first_line(error: BaseException) -> str:
    text = getattr(error, "message", None) or str(error) or type(error).__name__
    return text.strip().splitlines()[0]


def _restored_variables(prefix: str, arguments: Mapping[str, Any]) -> dict[str, np.ndarray]:
    import tensorflow_probability as tfp
    from tensorflow import train
    from tensorflow_probability.python.internal import tf_keras  # the Keras TFP's layers use

    tfb = tfp.bijectors
    stored = train.load_checkpoint(prefix).get_variable_to_dtype_map()
    dtype = float_dtype({name: value.name for name, value in stored.items()}, prefix)
    values = dict(arguments)
    num_hidden = int(values.pop("num_hidden", 400))
    floatx = tf_keras.backend.floatx()
    tf_keras.backend.set_floatx(dtype)
    try:
        glow = tfb.Glow(
            **values,
            coupling_bijector_fn=lambda shape: tfb.GlowDefaultNetwork(shape, num_hidden=num_hidden),
            exit_bijector_fn=tfb.GlowDefaultExitNetwork,
        )
        train.Checkpoint(glow=glow).read(prefix).assert_existing_objects_matched()
    finally:
        tf_keras.backend.set_floatx(floatx)
    return glow_variables(glow, values["output_shape"])
