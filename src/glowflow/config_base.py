"""What every flow family's config dataclass shares (importable without torch).

A family's architecture is one frozen dataclass derived from :class:`FlowConfig`. Each field is
declared with :func:`option`, which puts its help text, its choices and its *role* in the
field's metadata, so the CLI flags, config files, presets, model folders and validation all
read them from one place:

* ``role="shape"``: the data's event shape ``(C, H, W)``, decided by the dataset in training;
* ``role="classes"``: the class count of a class-conditional model, decided by the dataset;
* ``role="seed"``: the initialization seed, decided by the run's ``seed``;
* ``role="runtime"``: a choice of how to run (memory mode, argument validation), not part of
  the architecture: model folders store it at its default (:meth:`FlowConfig.architecture`);
* ``role="regularization"``: a training-time regularizer (coupling dropout) that leaves the
  weights and the density of the trained model as they are: stored, a flag, and free to change
  when a run starts from another model's weights (``--init-from``).

Fields without a role are architecture, and each is a ``glowflow train`` flag.

>>> from dataclasses import dataclass
>>> @dataclass(frozen=True)
... class Tiny(FlowConfig):
...     width: int = option(8, "hidden width")
...     kind: str = option("a", "which kind", ("a", "b"))
>>> Tiny(width=4).to_dict()
{'width': 4, 'kind': 'a'}
>>> Tiny(kind="c")  # doctest: +ELLIPSIS
Traceback (most recent call last):
    ...
glowflow.errors.ConfigError: Tiny.kind must be one of ('a', 'b'), got 'c'
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import field
from typing import Any, Mapping, Optional, Sequence, TypeVar

from .errors import ConfigError

ROLES = ("shape", "classes", "seed", "runtime", "regularization")
"""Field roles (see the module docstring); a field without one is architecture."""

C = TypeVar("C", bound="FlowConfig")


def option(
    default: Any,
    help: str,
    choices: Optional[tuple[str, ...]] = None,
    role: Optional[str] = None,
) -> Any:
    """A dataclass field with its help text, choices and role in the metadata."""
    if role is not None and role not in ROLES:
        raise ConfigError(f"option role must be one of {ROLES}, got {role!r}")
    return field(default=default, metadata={"help": help, "choices": choices, "role": role})


class FlowConfig:
    """Base of the family configs: coercion and choice checks on construction, JSON round
    trips, per-field help, choices and roles. Subclasses are ``@dataclass(frozen=True)`` and
    add their own checks in :meth:`check`."""

    def __post_init__(self) -> None:
        types = typing.get_type_hints(type(self))
        name = type(self).__name__
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = coerce(f"{name}.{f.name}", types[f.name], getattr(self, f.name))
            object.__setattr__(self, f.name, value)
            choices = f.metadata["choices"]
            if choices is not None and value is not None and value not in choices:
                raise ConfigError(f"{name}.{f.name} must be one of {choices}, got {value!r}")
        self.check()

    def check(self) -> None:
        """The family's own validation (ranges, combinations); ``ConfigError`` naming the field."""

    # ------------------------------------------------------------------------- the fields
    @classmethod
    def _field(cls, name: str) -> dataclasses.Field:
        fields = cls.__dataclass_fields__  # type: ignore[attr-defined]
        if name not in fields:
            raise ConfigError(f"{cls.__name__} has no option {name!r}; known: {sorted(fields)}")
        return fields[name]

    @classmethod
    def help(cls, name: str) -> str:
        """The help text of field ``name``."""
        return cls._field(name).metadata["help"]

    @classmethod
    def choices(cls, name: str) -> Optional[tuple[str, ...]]:
        """The choices of field ``name``, or ``None`` when it is not a choice."""
        return cls._field(name).metadata["choices"]

    @classmethod
    def role(cls, name: str) -> Optional[str]:
        """The role of field ``name`` (:data:`ROLES`), ``None`` for architecture."""
        return cls._field(name).metadata.get("role")

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]

    @classmethod
    def field_types(cls) -> dict[str, Any]:
        """``{name: type}`` of every field."""
        return typing.get_type_hints(cls)

    @classmethod
    def fields_with_role(cls, role: Optional[str]) -> tuple[str, ...]:
        """The fields of one role (``None``: the architecture fields)."""
        return tuple(name for name in cls.field_names() if cls.role(name) == role)

    # ------------------------------------------------------------------------ (de)serializing
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        return {
            name: (list(value) if isinstance(value, tuple) else value)
            for name, value in dataclasses.asdict(self).items()  # type: ignore[call-overload]
        }

    @classmethod
    def from_dict(cls: type[C], values: Mapping[str, Any], where: Optional[str] = None) -> C:
        """Build from a (possibly partial) mapping; unknown names are a ``ConfigError`` naming
        ``where`` (a file, say)."""
        if not isinstance(values, Mapping):
            raise ConfigError(
                f"{where or cls.__name__}: expected a table of options, got {values!r}"
            )
        unknown = sorted(set(values) - set(cls.field_names()))
        if unknown:
            raise ConfigError(
                f"{where or cls.__name__}: unknown {cls.__name__.removesuffix('Config')} "
                f"option(s) {unknown}; "
                f"known: {sorted(cls.field_names())}"
            )
        try:
            return cls(**values)
        except ConfigError as error:
            raise ConfigError(f"{where}: {error}" if where else str(error)) from None

    def replace(self: C, **changes: Any) -> C:
        """A copy with ``changes`` applied (and validated)."""
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]

    def architecture(self: C) -> C:
        """This config with its runtime fields at their defaults: what a model folder stores."""
        defaults = {
            name: type(self)._field(name).default for name in self.fields_with_role("runtime")
        }
        return self.replace(**defaults)


def coerce(name: str, kind: Any, value: Any) -> Any:
    """``value`` as the field's type ``kind``: sequences to tuples, ints to floats where a float
    is wanted; anything else of the wrong type is a ``ConfigError`` naming the field ``name``."""
    args = typing.get_args(kind)
    if typing.get_origin(kind) is typing.Union and type(None) in args:
        if value is None:
            return None
        kind = next(a for a in args if a is not type(None))
        args = typing.get_args(kind)
    if typing.get_origin(kind) is tuple:
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            raise ConfigError(f"{name} must be a sequence, got {value!r}")
        fixed = not (len(args) == 2 and args[1] is Ellipsis)
        if fixed and len(value) != len(args):
            raise ConfigError(f"{name} must have {len(args)} entries, got {tuple(value)}")
        return tuple(coerce(name, args[0], v) for v in value)
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be true or false, got {value!r}")
        return value
    if kind is int:
        if isinstance(value, bool) or not hasattr(value, "__index__"):
            raise ConfigError(f"{name} must be an integer, got {value!r}")
        return int(value)
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{name} must be a number, got {value!r}")
        return float(value)
    if kind is str and not isinstance(value, str):
        raise ConfigError(f"{name} must be a string, got {value!r}")
    return value
