"""Every example in a docstring of parafactory runs, and shows what it says."""

from __future__ import annotations

import dataclasses
import doctest
import importlib
import pkgutil
from pathlib import Path

import matplotlib
import pandas
import pytest

import parafactory
from parafactory import (
    ArtifactManager,
    ExperimentParameters,
    Record,
    aggregate,
    stage,
)


@dataclasses.dataclass
class MyParams(ExperimentParameters):
    some_scalar_multiplier: float = 1.0


@dataclasses.dataclass
class ModelParams(ExperimentParameters):
    seed: int = 0
    model: object = None


@stage(inputs=None, outputs=["initial_value"])
def get_initial_value(record):
    return 5 * record.params.some_scalar_multiplier


@stage(inputs=["initial_value"], outputs=["final_value"])
def multiply_again(record, initial_value):
    return initial_value * record.params.some_scalar_multiplier


@aggregate(inputs=["final_value"], outputs=["maximum_value"])
def find_maximum_final_value(record, records, final_value):
    return max(final_value.values())


_PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02"
    b"\x00\x00\x00\x90wS\xde\x00\x00\x00\x0cIDATx\x9cc\xf8\xcf\xc0\x00\x00\x03\x01"
    b"\x01\x00\xc9\xfe\x92\xef\x00\x00\x00\x00IEND\xaeB`\x82"
)


def _modules_with_examples() -> list[str]:
    names = [parafactory.__name__]
    prefix = parafactory.__name__ + "."
    names += [info.name for info in pkgutil.walk_packages(parafactory.__path__, prefix)]
    finder = doctest.DocTestFinder()
    return [name for name in names if any(t.examples for t in finder.find(_import(name)))]


def _import(name: str):
    return importlib.import_module(name)


def _namespace() -> dict[str, object]:
    matplotlib.use("Agg")  # the examples draw figures; nothing is shown
    from matplotlib import pyplot

    manager = ArtifactManager("notebook_example_0", root="project")
    record = get_initial_value(Record(manager, MyParams(name="example")))
    Path(record.get_path("confusion.png")).write_bytes(_PNG)
    return {
        **{name: getattr(parafactory, name) for name in parafactory.__all__},
        "dataclasses": dataclasses,
        "MyParams": MyParams,
        "params": ModelParams(name="default"),
        "param_sets": [
            MyParams(name="default"),
            MyParams(name="doubled", some_scalar_multiplier=2.0),
        ],
        "get_initial_value": get_initial_value,
        "multiply_again": multiply_again,
        "find_maximum_final_value": find_maximum_final_value,
        "manager": manager,
        "fit": lambda data: sum(data),
        "record": record,
        "accuracy": 0.93,
        "losses": [1.0, 0.5, 0.25],
        "train_loss": [1.0, 0.5],
        "test_loss": [1.1, 0.7],
        "results_df": pandas.DataFrame({"seed": [0, 1], "accuracy": [0.91, 0.93]}),
        "plt": pyplot,
    }


def test_some_modules_have_examples() -> None:
    assert len(_modules_with_examples()) >= 5


@pytest.mark.parametrize("module_name", _modules_with_examples())
def test_docstring_examples_run(module_name: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # the manager's files go under the working directory
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    namespace = _namespace()
    for test in finder.find(_import(module_name), globs=namespace):
        runner.run(test)
    assert runner.failures == 0, f"{runner.failures} docstring examples failed in {module_name}"
