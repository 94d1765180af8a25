"""Parameter overrides from the command line: ``--set field=value`` and Hydra-style grids.

``--grid lr=0.1,0.01 --grid seed=0,1,2`` turns every parameter set into the cartesian
product of the values (6 sets each here), named after the base set and the overrides
(``default_lr=0.1_seed=0``). Values are Python literals (``3``, ``0.5``, ``'a'``,
``[1, 2]``, ``None``); anything else is a string. A dotted field (``model.depth=3``)
reaches into a nested dataclass. Every override is checked against every parameter
class before anything runs: a field that does not exist, or a value its annotation does
not allow, is refused with the field's and the class's name.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import itertools
import types
import typing
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

from .._errors import CommandLineError
from .._model.parameters import ExperimentParameters

_CLOSING = {"(": ")", "[": "]", "{": "}"}
# Names come from the overrides, hashes from the values; choose sets with --names instead.
_NOT_OVERRIDDEN = frozenset({"name", "hash", "hash_representations"})


class Override(NamedTuple):
    """One ``field=values`` argument: the field's dotted path, each value's text and value."""

    option: str  # "--set" or "--grid", for messages
    field: str
    texts: tuple[str, ...]
    values: tuple[Any, ...]


Chosen = tuple[Override, str, Any]
"""One value an override gives a field: the override, the value's text and the value."""


def parse_override(option: str, argument: str) -> Override:
    """``field=v1,v2`` as an :class:`Override` (``--set`` takes a single value)."""
    field, equals, text = argument.partition("=")
    field = field.strip()
    if not equals or not field or not text.strip():
        raise CommandLineError(f"{option} {argument!r}: write it as field=value")
    texts = tuple(split_values(text)) if option == "--grid" else (text.strip(),)
    return Override(option, field, texts, tuple(parse_value(item) for item in texts))


def split_values(text: str) -> list[str]:
    """``1,(2,3),'a,b'`` as ``["1", "(2,3)", "'a,b'"]``: commas split values except
    inside brackets or quotes."""
    values: list[str] = []
    current: list[str] = []
    depth, quote = 0, ""
    for character in text:
        if quote:
            quote = "" if character == quote else quote
        elif character in "'\"":
            quote = character
        elif character in _CLOSING:
            depth += 1
        elif character in _CLOSING.values():
            depth -= 1
        elif character == "," and depth == 0:
            values.append("".join(current).strip())
            current = []
            continue
        current.append(character)
    values.append("".join(current).strip())
    return [value for value in values if value]


def parse_value(text: str) -> Any:
    """A Python literal, or the text itself when it is not one (``adam`` is ``'adam'``)."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text


def expand(
    param_sets: Sequence[ExperimentParameters], sets: list[Override], grids: list[Override]
) -> list[ExperimentParameters]:
    """Every parameter set with the ``sets`` applied, times the cartesian product of the
    ``grids``; each changed set named after its base and its overrides."""
    if not sets and not grids:
        return list(param_sets)
    choices = [[(o, o.texts[0], o.values[0])] for o in sets]
    choices += [[(g, *pair) for pair in zip(g.texts, g.values, strict=True)] for g in grids]
    return [expanded for params in param_sets for expanded in _expanded(params, choices)]


def _expanded(
    params: ExperimentParameters, choices: list[list[Chosen]]
) -> Iterator[ExperimentParameters]:
    """``params`` with each combination of one value of every override in ``choices``
    (each value checked against the set's field, and its label made, once rather than
    once per combination)."""
    checked = [[_choice(params, *value) for value in values] for values in choices]
    # What dataclasses.replace would pass to remake the set, gathered once.
    arguments = {f.name: getattr(params, f.name) for f in dataclasses.fields(params) if f.init}
    for combination in itertools.product(*checked):
        yield _overridden(params, arguments, combination)


class _Choice(NamedTuple):
    """A checked value of an override, ready to apply to one parameter set."""

    label: str  # field=text, for the set's name
    head: str  # the set's field it changes
    rest: list[str]  # the path below it, to a field of a nested dataclass (or none)
    value: Any


def _choice(params: ExperimentParameters, override: Override, text: str, value: Any) -> _Choice:
    head, *rest = override.field.split(".")
    label = f"{override.field}={text}"
    return _Choice(label, head, rest, _checked_value(params, override, text, value))


def _overridden(
    params: ExperimentParameters, arguments: dict[str, Any], chosen: Sequence[_Choice]
) -> ExperimentParameters:
    """A copy of ``params``, made from its ``__init__`` ``arguments`` (so its
    ``__post_init__`` runs on the new values) with the ``chosen`` values, in order."""
    changed = dict(arguments)
    for _, head, rest, value in chosen:
        # A field of a nested dataclass: a copy of it (as changed so far), with it set.
        changed[head] = _replaced(changed[head], rest, value) if rest else value
    suffix = "_".join([choice.label for choice in chosen])
    changed["name"] = f"{params.name}_{suffix}"
    changed["hash"] = None  # computed afresh for the new values
    changed["hash_representations"] = dict(params.hash_representations)
    return type(params)(**changed)


def _replaced(obj: Any, path: list[str], value: Any) -> Any:
    """A copy of the dataclass ``obj`` with the field at ``path`` set to ``value``."""
    head, *rest = path
    new = value if not rest else _replaced(getattr(obj, head), rest, value)
    return dataclasses.replace(obj, **{head: new})


def _checked_value(params: Any, override: Override, text: str, value: Any) -> Any:
    """``value`` as the field at ``override.field`` of ``params`` takes it (an int for a
    float field becomes a float; a literal for a str field stays its text), or an error
    naming the field and its class."""
    owner, name = _owner_of(params, override)
    owner_class: Any = type(owner)
    hint = _field_hints(owner_class).get(name, Any)
    if _fits(value, hint):
        return float(value) if hint is float and isinstance(value, int) else value
    if not isinstance(value, str) and _fits(text, hint):
        return text
    raise CommandLineError(
        f"{override.option} {override.field}={text}: field {name!r} of "
        f"{type(owner).__name__} is {_type_name(hint)}, and {value!r} is a "
        f"{type(value).__name__}"
    )


def _owner_of(params: Any, override: Override) -> tuple[Any, str]:
    """The dataclass holding the last field of ``override.field``, and that field's name."""
    *parents, name = override.field.split(".")
    owner = params
    for part in [*parents, name]:
        fields = {f.name for f in dataclasses.fields(owner) if f.init} - _NOT_OVERRIDDEN
        if part not in fields:
            raise CommandLineError(
                f"{override.option} {override.field}: {type(owner).__name__} has no field "
                f"{part!r} (its fields: {', '.join(sorted(fields))})"
            )
        if part != name:
            owner = getattr(owner, part)
            if not dataclasses.is_dataclass(owner):
                raise CommandLineError(
                    f"{override.option} {override.field}: field {part!r} is a "
                    f"{type(owner).__name__}, not a dataclass with fields of its own"
                )
    return owner, name


@functools.cache
def _field_hints(cls: Any) -> dict[str, Any]:
    """A dataclass's field annotations, resolved (unresolvable ones are not checked)."""
    try:
        return typing.get_type_hints(cls)
    except Exception:  # a name the annotations use is not importable: check what resolves
        return {f.name: f.type for f in dataclasses.fields(cls) if not isinstance(f.type, str)}


def _fits(value: Any, hint: Any) -> bool:
    """Whether ``value`` is allowed by the annotation ``hint`` (element types of containers
    and annotations it cannot check are taken as allowing anything)."""
    origin = typing.get_origin(hint)
    if hint is Any or isinstance(hint, typing.TypeVar):
        return True
    if hint is None or hint is type(None):
        return value is None
    if origin is typing.Union or origin is types.UnionType:
        return any(_fits(value, argument) for argument in typing.get_args(hint))
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    checked = origin if origin is not None else hint
    return not isinstance(checked, type) or isinstance(value, checked)


def _type_name(hint: Any) -> str:
    return hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "")
