"""Parameter sets and their hashes, compatible with curifactory's algorithm.

A parameter set's hash is the hex of the sum, as integers, of one md5 per
field: ``md5(f"{field}{representation}")``. ``name``, ``hash``, ``overwrite``,
``hash_representations`` and fields set to ``None`` do not count; nested
dataclasses recurse; callables are represented by their ``__qualname__``.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from collections.abc import Callable
from typing import Any

HashFunction = Callable[[Any, Any], Any]
"""``fn(param_set, value) -> representation``; ``None`` in its place skips the field."""

_NEVER_HASHED = frozenset({"name", "hash", "overwrite", "hash_representations"})
_PLAIN_TYPES = frozenset({int, float, str, bool, bytes})


@dataclasses.dataclass
class ExperimentParameters:
    """Base class for a parameter set; subclass it as a ``@dataclass``.

    >>> @dataclasses.dataclass
    ... class MyParams(ExperimentParameters):
    ...     some_scalar_multiplier: float = 1.0
    >>> parameter_set_hash(MyParams(name="default"))
    'fbfbde1db878403f89d2b0b9cdf4fbbd'
    """

    name: str = "UNNAMED"
    hash: str | None = None
    overwrite: bool = False
    hash_representations: dict[str, HashFunction | None] = dataclasses.field(
        default_factory=dict, repr=False
    )

    def set_hash_functions(self, **functions: HashFunction | None) -> None:
        """Customise how fields are hashed: a function ``fn(self, value)``, or ``None`` to skip.

        >>> params.set_hash_functions(seed=None, model=lambda self, m: m.kind)
        """
        unknown = set(functions) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ValueError(
                f"set_hash_functions got {sorted(unknown)}, which are not fields of "
                f"{type(self).__name__}; pass existing field names only"
            )
        self.hash_representations.update(functions)


def parameter_set_hash(params: ExperimentParameters) -> str:
    """The hash of ``params``: the one given explicitly, else one computed from its fields."""
    if params.hash is not None:
        return params.hash
    return f"{_fields_hash_sum(params):x}"


def _fields_hash_sum(params: Any) -> int:
    custom = getattr(params, "hash_representations", None) or {}
    cls: Any = type(params)
    total = 0
    for name, prefix in _hashed_fields(cls):
        value = getattr(params, name)
        if name in custom:
            function = custom[name]
            representation = None if function is None else function(params, value)
        elif value is None:
            continue
        elif type(value) in _PLAIN_TYPES:  # most fields: skip the checks below
            representation = repr(value)
        elif hasattr(type(value), "__dataclass_fields__"):
            total += _fields_hash_sum(value)  # a nested dataclass adds its own fields' sum
            continue
        elif callable(value):
            representation = value.__qualname__
        else:
            representation = repr(value)
        if representation is not None:
            digest = prefix.copy()  # md5 of f"{name}{representation}", the name hashed once
            digest.update(str(representation).encode())
            total += int.from_bytes(digest.digest(), "big")
    return total


@functools.cache
def _hashed_fields(cls: Any) -> tuple[tuple[str, Any], ...]:
    """Each hashed field's name, with an md5 that has already taken the name in."""
    return tuple(
        (f.name, hashlib.md5(f.name.encode()))
        for f in dataclasses.fields(cls)
        if f.name not in _NEVER_HASHED
    )


def combined_hash(own_hash: str | None, input_hashes: list[str | None]) -> str:
    """curifactory's combo hash for an aggregate: md5 of its own and its inputs' sorted hashes."""
    key = [own_hash or "None", *sorted(h or "None" for h in input_hashes)]
    return hashlib.md5(str(key).encode()).hexdigest()


def parameters_representation(params: ExperimentParameters) -> dict[str, str]:
    """Each field of ``params`` as text, for the parameters registry and reports."""
    return {
        field.name: repr(getattr(params, field.name))
        for field in dataclasses.fields(params)
        if field.name not in ("hash", "hash_representations")
    }
