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

from .._digests import md5 as _field_md5
from .._errors import ParameterClassError

HashFunction = Callable[[Any, Any], Any]
"""``fn(param_set, value) -> representation``; ``None`` in its place skips the field."""

_NEVER_HASHED = frozenset({"name", "hash", "overwrite", "hash_representations"})
_PLAIN_TYPES = frozenset({int, float, str, bool, bytes})
_KEYED_BY_VALUE = frozenset({str, int})  # exact types only: True and 1.0 equal 1 in a dict
# Digests remembered per field, for short representations only, so memory stays bounded;
# other values are hashed each time.
_KNOWN_PER_FIELD = 4096
_KNOWN_LENGTH = 200


@dataclasses.dataclass
class ExperimentParameters:
    """Base class for a parameter set; subclass it as a ``@dataclass``.

    >>> @dataclasses.dataclass
    ... class MyParams(ExperimentParameters):
    ...     some_scalar_multiplier: float = 1.0
    >>> MyParams(name="default").params_hash()
    'fbfbde1db878403f89d2b0b9cdf4fbbd'
    """

    name: str = "UNNAMED"
    hash: str | None = None
    overwrite: bool = False
    hash_representations: dict[str, HashFunction | None] = dataclasses.field(
        default_factory=dict, repr=False
    )

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        if cls not in _DATACLASSES:
            _check_is_dataclass(cls)
        return object.__new__(cls)

    def params_hash(self, dry: bool = False) -> Any:
        """This parameter set's hash (the one given, else computed; ``hash`` is left as it
        is), or with ``dry=True`` how each field is represented: ``{field: (strategy,
        representation)}``, to debug custom hash functions (as curifactory's)."""
        return hash_table(self) if dry else parameter_set_hash(self)

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


def set_hash_functions(*functions: dict[str, Any], **field_functions: HashFunction | None) -> Any:
    """A ``hash_representations`` field default, as in curifactory: how fields are hashed
    (a function ``fn(param_set, value)``), or ``None`` to leave a field out.

    >>> @dataclasses.dataclass
    ... class Params(ExperimentParameters):
    ...     seed: int = 0
    ...     workers: int = 4
    ...     hash_representations: dict = set_hash_functions(workers=None)
    >>> Params().params_hash() == Params(workers=8).params_hash()
    True
    """
    if len(functions) > 1 or (functions and not isinstance(functions[0], dict)):
        raise ValueError(
            "set_hash_functions takes field=function keywords, and at most one positional "
            f"argument, a dict of them; got {functions!r}"
        )
    merged = {**(functions[0] if functions else {}), **field_functions}
    return dataclasses.field(default_factory=lambda: dict(merged), repr=False)


def hash_table(params: Any) -> dict[str, tuple[str, Any]]:
    """Each field's hashing strategy and representation, with curifactory's strategy
    names (nested dataclasses as tables of their own)."""
    custom = getattr(params, "hash_representations", None) or {}
    table: dict[str, tuple[str, Any]] = {}
    for field in dataclasses.fields(params):
        name, value = field.name, getattr(params, field.name)
        if name in _NEVER_HASHED:
            table[name] = ("SKIPPED: blacklist", None)
        elif name in custom and custom[name] is None:
            table[name] = ("SKIPPED: set to None in hash_representations", None)
        elif name in custom:
            function = custom[name]
            table[name] = (
                f"param_set.hash_representations['{name}'](param_set, {name})",
                function(params, value),
            )
        elif value is None:
            table[name] = ("SKIPPED: value is None", None)
        elif dataclasses.is_dataclass(value):
            table[name] = (f"get_param_set_hash_values(param_set, {name})", hash_table(value))
        elif callable(value):
            table[name] = (f"{name}.__qualname__", value.__qualname__)
        else:
            table[name] = (f"repr({name})", repr(value))
    return table


_DATACLASSES: set[type] = set()  # parameter classes already checked to be dataclasses


def _check_is_dataclass(cls: type) -> None:
    """Refuse a parameter class that is not a dataclass itself: a subclass of one without
    ``@dataclass`` would be hashed by its parent's fields, and share its parent's cache."""
    if "__dataclass_fields__" not in cls.__dict__:
        raise ParameterClassError(
            f"parameter class {cls.__qualname__} is not a dataclass: put @dataclass on it "
            f"(every subclass of ExperimentParameters needs its own, or its fields are not "
            f"parameters and do not count in its hash)"
        )
    _DATACLASSES.add(cls)


def parameter_set_hash(params: ExperimentParameters) -> str:
    """The hash of ``params``: the one given explicitly, else one computed from its fields."""
    if params.hash is not None:
        return params.hash
    return f"{_fields_hash_sum(params):x}"


def _fields_hash_sum(params: Any) -> int:
    """The sum of the field digests of a parameter set, or of a nested dataclass (an
    instance, or a class, whose field defaults count: curifactory's rule)."""
    custom = getattr(params, "hash_representations", None)
    total = 0
    is_class = isinstance(params, type)
    for name, known in _hashed_fields(params if is_class else params.__class__):
        value = getattr(params, name) if not is_class else _class_default(params, name)
        if not (custom and name in custom):
            if type(value) in _KEYED_BY_VALUE:
                part = known.get(value)  # most fields: no repr needed once the value is known
                total += _field_digest(name, repr(value), value, known) if part is None else part
                continue
            if value is None:
                continue
        representation = _representation(params, name, value, custom)
        if representation is None:
            continue
        if isinstance(representation, int):  # a nested dataclass adds its own fields' sum
            total += representation
            continue
        key = (representation,)  # never equal to a value remembered above
        part = known.get(key)
        total += _field_digest(name, representation, key, known) if part is None else part
    return total


def _representation(params: Any, name: str, value: Any, custom: Any) -> str | int | None:
    """How one field counts: its text, a nested dataclass's sum, or ``None`` (skipped)."""
    if custom and name in custom:
        function = custom[name]
        custom_representation = None if function is None else function(params, value)
        return None if custom_representation is None else str(custom_representation)
    if value is None:
        return None
    if type(value) in _PLAIN_TYPES:
        return repr(value)
    if dataclasses.is_dataclass(value):
        return _fields_hash_sum(value)
    if callable(value):
        return str(value.__qualname__)
    return repr(value)


def _class_default(cls: type, name: str) -> Any:
    """A field's default on a dataclass class used as a value (its defaults are its hash)."""
    try:
        return getattr(cls, name)
    except AttributeError:
        raise TypeError(
            f"the dataclass class {cls.__qualname__}, used as a parameter value, has no "
            f"default for its field {name!r}, so it cannot be hashed (its field defaults are "
            "its hash, as in curifactory): give the field a plain default, or use an instance"
        ) from None


def _field_digest(name: str, representation: str, key: Any, known: dict[Any, int]) -> int:
    """md5 of ``f"{name}{representation}"`` as an integer, remembered under ``key``."""
    part = int.from_bytes(_field_md5(f"{name}{representation}".encode()).digest(), "big")
    if len(known) < _KNOWN_PER_FIELD and len(representation) <= _KNOWN_LENGTH:
        known[key] = part
    return part


@functools.cache
def _hashed_fields(cls: Any) -> tuple[tuple[str, dict[Any, int]], ...]:
    """Each hashed field's name, with the digests of the values seen so far (a sweep's
    fields repeat a few values): keyed by the value itself for ``str`` and ``int``, whose
    representation it decides, else by a 1-tuple of the representation."""
    if isinstance(cls, type) and issubclass(cls, ExperimentParameters):
        _check_is_dataclass(cls)
    return tuple((f.name, {}) for f in dataclasses.fields(cls) if f.name not in _NEVER_HASHED)


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
