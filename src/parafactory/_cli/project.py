"""A project laid out the curifactory way: experiments, parameter files, and finding them.

A project keeps its experiments in ``experiments/`` (modules holding ``run(param_sets,
manager)``) and its parameter files in ``params/`` (modules holding ``get_params()``),
beside the modules they import (``stages/``, ...). Commands run from the project's root,
which, as with ``python -m``, comes first on ``sys.path`` (workers get the same path).
"""

from __future__ import annotations

import ast
import importlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from .._errors import CommandLineError
from .._model.parameters import ExperimentParameters

EXPERIMENTS = "experiments"
PARAMS = "params"


def load_experiment(reference: str) -> ModuleType:
    """The experiment module ``reference`` names; it must hold ``run(param_sets, manager)``."""
    module = _load(reference, EXPERIMENTS, "experiment")
    if not callable(getattr(module, "run", None)):
        raise CommandLineError(
            f"experiment {reference!r} ({module.__file__}) has no function "
            "run(param_sets, manager): define one there (curifactory's convention)"
        )
    return module


def load_param_sets(references: list[str], experiment: ModuleType) -> list[ExperimentParameters]:
    """The parameter sets of every parameter file named, in order; with none named, those
    of the experiment's own ``get_params()``."""
    if references:
        modules = [_load(reference, PARAMS, "parameter file") for reference in references]
    elif callable(getattr(experiment, "get_params", None)):
        modules = [experiment]
    else:
        raise CommandLineError(
            f"experiment {experiment.__name__!r} has no get_params() of its own: name a "
            "parameter file with -p PARAMS (parafactory ls lists them)"
        )
    return [params for module in modules for params in _param_sets_of(module)]


def listing(root: Path) -> dict[str, list[str]]:
    """The experiments and parameter files under ``root``: the modules of ``experiments/``
    that define ``run`` and of ``params/`` that define ``get_params`` (read, not imported)."""
    return {
        EXPERIMENTS: _modules_defining(root / EXPERIMENTS, "run"),
        PARAMS: _modules_defining(root / PARAMS, "get_params"),
    }


def _param_sets_of(module: ModuleType) -> list[ExperimentParameters]:
    get_params: Callable[[], Any] | None = getattr(module, "get_params", None)
    if not callable(get_params):
        raise CommandLineError(
            f"parameter file {module.__name__!r} ({module.__file__}) has no get_params(): "
            "define one returning a list of parameter sets"
        )
    param_sets = list(get_params())
    for position, params in enumerate(param_sets):
        if not isinstance(params, ExperimentParameters):
            raise CommandLineError(
                f"{module.__name__}.get_params() returned a {type(params).__name__} at "
                f"position {position}: return ExperimentParameters instances"
            )
    return param_sets


def _load(reference: str, folder: str, kind: str) -> ModuleType:
    """A module under ``folder/`` by name, a ``.py`` file by path, or a dotted module."""
    _working_directory_first()
    if reference.endswith(".py") or os.sep in reference:
        return _load_path(Path(reference), kind)
    if Path(folder, f"{reference}.py").is_file():
        return _import(f"{folder}.{reference}", reference, kind)
    return _import(reference, reference, kind)


def _load_path(path: Path, kind: str) -> ModuleType:
    """A module file, imported under the dotted name it has from the working directory
    (so workers can import it too), or by its own name from its folder."""
    if not path.is_file():
        raise CommandLineError(f"no {kind} file {str(path)!r}: check the path")
    resolved = path.resolve().with_suffix("")
    try:
        parts = resolved.relative_to(Path.cwd().resolve()).parts
    except ValueError:
        parts = ()
    if not parts or not all(part.isidentifier() for part in parts):
        sys.path.insert(0, str(resolved.parent))
        parts = (resolved.name,)
    return _import(".".join(parts), str(path), kind)


def _import(name: str, reference: str, kind: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name is None or not (name == error.name or name.startswith(f"{error.name}.")):
            raise  # the module exists; something it imports does not
        folder = EXPERIMENTS if kind == "experiment" else PARAMS
        raise CommandLineError(
            f"no {kind} {reference!r}: it is neither {folder}/{reference}.py, a .py file, "
            "nor an importable module (parafactory ls lists what is here)"
        ) from None


def _working_directory_first() -> None:
    cwd = os.getcwd()
    if sys.path[:1] != [cwd] and sys.path[:1] != [""]:
        sys.path.insert(0, cwd)


def _modules_defining(folder: Path, function: str) -> list[str]:
    if not folder.is_dir():
        return []
    return [
        path.stem
        for path in sorted(folder.glob("*.py"))
        if not path.name.startswith("_") and function in _top_level_functions(path)
    ]


def _top_level_functions(path: Path) -> set[str]:
    try:
        tree = ast.parse(path.read_bytes(), str(path))
    except (SyntaxError, ValueError, OSError):
        return set()
    return {
        node.name for node in tree.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }
