"""Where the code of a stage that travels by value came from, so that a traceback in a
worker shows the real file or notebook cell, and the source line.

A stage defined in ``__main__`` or a notebook cell is pickled by value (cloudpickle),
which names its code ``"<dynamic-code>"`` (a pickle that does not depend on where the
function was defined), and a worker cannot read a notebook cell's source anyway. So the
stage's spec takes along a :class:`CodeOrigin`: for its function and the functions and
classes of ``__main__`` it reaches through globals, closures and defaults, the file or
cell each came from and its source lines. In the worker, each function's code gets its
file name back, and the lines go into the worker's ``linecache`` for a file the worker
cannot read itself.
"""

from __future__ import annotations

import dataclasses
import linecache
import sys
import types
from collections.abc import Iterator
from typing import Any


@dataclasses.dataclass(frozen=True)
class CodeOrigin:
    """Functions that travel by value (the very objects, so a pickle holds them once)
    with their file names, and the source lines of those files: ``{file: {line: text}}``."""

    functions: tuple[tuple[types.FunctionType, str], ...]
    lines: dict[str, dict[int, str]]


def origin_of(function: Any) -> CodeOrigin:
    """In the parent: where ``function`` and what it uses by value were defined."""
    functions = tuple(_by_value_functions(function))
    names = {f.__code__.co_filename: _shown_name(f.__code__.co_filename) for f in functions}
    lines: dict[str, dict[int, str]] = {}
    for found in functions:
        code = found.__code__
        source = linecache.getlines(code.co_filename, found.__globals__)
        numbers = _line_numbers(code)
        span = range(min(numbers), min(max(numbers), len(source)) + 1)
        lines.setdefault(names[code.co_filename], {}).update({n: source[n - 1] for n in span})
    return CodeOrigin(tuple((f, names[f.__code__.co_filename]) for f in functions), lines)


def _shown_name(filename: str) -> str:
    """A notebook cell's code as IPython names it in tracebacks (``Cell In[3]``); any
    other code, its file name."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    name_of = getattr(getattr(shell, "compile", None), "format_code_name", None)
    shown = name_of(filename) if name_of is not None else None
    return " ".join(shown) if shown else filename


def restore(origin: CodeOrigin) -> None:
    """In a worker: give each function's code its file name back, and make the source
    lines of files this process cannot read known to ``linecache``."""
    for function, filename in origin.functions:
        if function.__code__.co_filename != filename:
            function.__code__ = _named(function.__code__, filename)
    for filename, lines in origin.lines.items():
        _remember(filename, lines)


def global_names(code: types.CodeType) -> set[str]:
    """The global names a code object (and the code nested in it) may read."""
    names = set(code.co_names)
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            names |= global_names(constant)
    return names


def _by_value_functions(function: Any) -> Iterator[types.FunctionType]:
    """``function`` and the functions of ``__main__`` (or local ones) it reaches."""
    pending, seen = [function], set()
    while pending:
        value = pending.pop()
        if id(value) in seen:
            continue
        seen.add(id(value))
        if isinstance(value, type) and _travels_by_value(value):
            pending += [_function_of(member) for member in vars(value).values()]
        elif isinstance(value, types.FunctionType) and (
            value is function or _travels_by_value(value)
        ):
            yield value
            pending += _used_by(value)


def _used_by(function: types.FunctionType) -> list[Any]:
    """What pickling ``function`` by value takes along: the globals its code reads, its
    closure, its defaults, and the function it wraps (a decorated stage)."""
    namespace = function.__globals__
    used = [namespace[name] for name in global_names(function.__code__) if name in namespace]
    for cell in function.__closure__ or ():
        try:
            used.append(cell.cell_contents)
        except ValueError:  # a cell not filled yet
            continue
    used += list(function.__defaults__ or ())
    wrapped = getattr(function, "__wrapped__", None)
    return used + ([wrapped] if wrapped is not None else [])


def _function_of(member: Any) -> Any:
    """The function behind a class member (a method, static or class method, property)."""
    return getattr(member, "__func__", None) or getattr(member, "fget", None) or member


def _travels_by_value(value: Any) -> bool:
    """Whether pickle cannot find ``value`` by its module and name: cloudpickle then
    pickles it by value."""
    module_name = getattr(value, "__module__", None)
    module = sys.modules.get(module_name or "")
    if module is None or module_name == "__main__":
        return True
    found: Any = module
    for part in getattr(value, "__qualname__", "").split("."):
        found = getattr(found, part, None)
    return found is not value


def _line_numbers(code: types.CodeType) -> list[int]:
    """Every line a code object (and the code nested in it) spans, its first included."""
    numbers = [code.co_firstlineno]
    numbers += [line for _, _, line in code.co_lines() if line is not None]
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            numbers += _line_numbers(constant)
    return numbers


def _named(code: types.CodeType, filename: str) -> types.CodeType:
    """``code`` (and the code nested in it) as defined in ``filename``."""
    constants = tuple(
        _named(c, filename) if isinstance(c, types.CodeType) else c for c in code.co_consts
    )
    return code.replace(co_filename=filename, co_consts=constants)


def _remember(filename: str, lines: dict[int, str]) -> None:
    """Make ``lines`` of ``filename`` known to ``linecache``, unless this process can read
    the file itself. Lines of other functions of the same file or cell, remembered for
    other stages, are kept."""
    if not lines:
        return
    entry: tuple[Any, ...] = linecache.cache.get(filename, ())
    remembered = len(entry) == 4 and entry[1] is None
    if not remembered and linecache.getlines(filename):
        return  # this process reads the file itself
    known = list(entry[2]) if remembered else []
    known += ["\n"] * (max(lines) - len(known))
    for number, text in lines.items():
        known[number - 1] = text
    # mtime None: linecache.checkcache keeps the entry (as it does IPython's cells)
    linecache.cache[filename] = (sum(map(len, known)), None, known, filename)
