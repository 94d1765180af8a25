"""Values that cross a process boundary: checked before a run, pickled one record at a time.

What a run sends is checked once before any worker starts, so a value that cannot travel
(a parameter field, a global a stage defined in ``__main__`` uses, a value written to a
state while planning) is one clear error, not a failure per batch. What comes back is
pickled per record by the worker and unpickled per record by the parent, so a value that
cannot make the trip fails its own record and never its neighbours.
"""

from __future__ import annotations

import dataclasses
import pickle
import types
from collections.abc import Iterable, Iterator
from typing import Any

import cloudpickle

from .._bounded import TEXT_LIMIT, bounded
from .._errors import UnpicklableStateError
from .._model.code_origin import global_names
from .._model.stages import travels_by_value

_PLAIN = frozenset({int, float, str, bool, bytes, type(None)})  # exact types: always pickle
_CONTAINERS = frozenset({dict, list, tuple, set})


def dumps(value: Any) -> bytes:
    """Pickle ``value`` with the C pickler, or with cloudpickle for what only exists by
    value (functions and classes from ``__main__`` or a notebook cell)."""
    try:
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # any failure: cloudpickle knows more ways
        pickled: bytes = cloudpickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        return pickled


def loads(data: bytes) -> Any:
    """Unpickle what :func:`dumps` made."""
    return pickle.loads(data)


def why_unpicklable(value: Any) -> Exception | None:
    """The error pickling ``value`` raises, or ``None`` when it pickles."""
    try:
        dumps(value)
    except Exception as error:  # any failure is the answer
        return error
    return None


class ForeignException(Exception):
    """Stands in for an exception that cannot be pickled, or unpickled, across processes:
    it keeps the original's type name and message (the traceback travels as text)."""

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(type_name, message)
        self.type_name = type_name

    def __str__(self) -> str:
        return str(self.args[1])


def travelling_exception(error: BaseException) -> BaseException:
    """``error`` itself if it survives a round trip through pickle and its message is not
    huge, else a stand-in with its type name and its message (bounded)."""
    message = str(error)
    if len(message) > TEXT_LIMIT:
        return ForeignException(type(error).__qualname__, bounded(message))
    try:
        loads(dumps(error))
    except Exception:  # any failure either way means: send a stand-in
        return ForeignException(type(error).__qualname__, message)
    return error


def check_state_travels(record_name: str, state: dict[str, Any]) -> None:
    """Refuse a value written to a record's state while planning that cannot travel."""
    for key, value in dict.items(state):
        error = why_unpicklable(value)
        if error is not None:
            raise UnpicklableStateError(
                f"record {record_name!r} cannot be sent to a worker process: state[{key!r}] "
                f"holds a {type(value).__name__} that cannot be pickled ({error}). Create that "
                "value inside a stage, or run with n_jobs=1."
            ) from error


def check_parameters_travel(param_sets: Iterable[Any]) -> None:
    """Refuse parameter sets with a field that cannot travel, naming the field once."""
    checked: set[int] = set()
    for params in param_sets:
        for field, value in _fields_of(params):
            kind = type(value)
            if kind in _PLAIN or (kind in _CONTAINERS and not value) or id(value) in checked:
                continue
            checked.add(id(value))
            error = why_unpicklable(value)
            if error is not None:
                raise UnpicklableStateError(
                    f"parameter field {type(params).__name__}.{field} of {params.name!r} holds "
                    f"a {type(value).__name__} that cannot be sent to a worker process "
                    f"({error}). Keep something picklable in it (a name, a path, a number) "
                    "and build the object inside a stage, or run with n_jobs=1."
                ) from error


def check_function_travels(stage_name: str, function: Any) -> None:
    """Refuse a stage that travels by value (defined in ``__main__``, a notebook, or a
    function) whose globals, closure or defaults cannot be pickled, naming the culprit."""
    if why_unpicklable(function) is None:
        return
    for kind, name, value in _captured(function):
        error = why_unpicklable(value)
        if error is not None:
            raise UnpicklableStateError(
                f"stage {stage_name!r} uses the {kind} {name!r}, a {type(value).__name__} that "
                f"cannot be sent to a worker process ({error}). Create it inside the stage, "
                "define it in an importable module, or run with n_jobs=1."
            ) from error
    raise UnpicklableStateError(
        f"stage {stage_name!r} cannot be sent to a worker process ({why_unpicklable(function)}); "
        "define it in an importable module, or run with n_jobs=1."
    )


def _captured(function: Any) -> Iterator[tuple[str, str, Any]]:
    """What pickling a function by value takes along: globals, closure cells, defaults."""
    code = getattr(function, "__code__", None)
    if code is None:
        return
    namespace = getattr(function, "__globals__", {})
    for name in sorted(global_names(code)):
        if name in namespace and not isinstance(namespace[name], types.ModuleType):
            yield "global", name, namespace[name]
    for name, cell in zip(code.co_freevars, function.__closure__ or (), strict=False):
        yield "variable", name, cell.cell_contents
    for position, value in enumerate(function.__defaults__ or ()):
        yield "default value", f"#{position}", value


def _fields_of(params: Any) -> Iterable[tuple[str, Any]]:
    values = getattr(params, "__dict__", None)
    if values is not None:
        return values.items()  # type: ignore[no-any-return]
    return ((field.name, getattr(params, field.name)) for field in dataclasses.fields(params))


def check_plan_travels(records: list[Any], stages: list[Any]) -> None:
    """Refuse, before any worker starts, a planned run whose records or stages cannot be
    pickled to a worker process: parameter fields, values written to a state while
    planning, and what stages defined in ``__main__`` or a notebook take along."""
    check_parameters_travel(record.params for record in records if record.params)
    for record in records:
        if dict.__len__(record.state):  # values written while planning
            check_state_travels(record.name, record.state)
    for spec in stages:
        if travels_by_value(spec):
            check_function_travels(spec.name, spec.function)
