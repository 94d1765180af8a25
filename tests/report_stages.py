"""Stages that report, for the reportable tests, importable by worker processes.

Every stage here writes one empty file ``{stage}__{record}__{uuid}`` into
``params.marker_dir`` when it runs (:func:`executions` counts them), so a cached rerun
that runs nothing can be told from one that runs again, in any process.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import threading
import uuid
from pathlib import Path
from typing import Any

import pandas as pd

from parafactory import (
    DFReporter,
    ExperimentParameters,
    FigureReporter,
    HTMLReporter,
    ImageReporter,
    JsonReporter,
    LatexTableReporter,
    LinePlotReporter,
    PickleCacher,
    Record,
    Reportable,
    aggregate,
    stage,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclasses.dataclass
class Plot(ExperimentParameters):
    value: int = 0
    marker_dir: str = ""


def sweep(marker_dir: Path, count: int) -> list[Plot]:
    Path(marker_dir).mkdir(parents=True, exist_ok=True)
    return [Plot(name=f"p{i}", value=i, marker_dir=str(marker_dir)) for i in range(count)]


def _mark(record: Record, stage_name: str) -> None:
    directory = record.params.marker_dir if record.params is not None else ""
    if directory:
        Path(directory, f"{stage_name}__{record.name}__{uuid.uuid4().hex}").touch()


def executions(marker_dir: Path, stage_name: str) -> int:
    return sum(1 for path in Path(marker_dir).iterdir() if path.name.startswith(f"{stage_name}__"))


class TextReporter(Reportable):
    """A user's own reportable: writes a text file and links it."""

    def __init__(self, text: str, name: str | None = None, group: str | None = None) -> None:
        self.text = text
        super().__init__(name=name, group=group)

    def render(self) -> None:
        Path(self.path, f"{self.qualified_name}.txt").write_text(self.text)

    def html(self) -> str:
        return f"<a href='{self.path}/{self.qualified_name}.txt'>{self.text}</a>"


class Unpicklable(Reportable):
    """Holds a lock: cannot travel back from a worker process."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        super().__init__(name="unpicklable")

    def html(self) -> str:
        return ""


def figure_of(value: int) -> Any:
    """A pyplot figure (in a worker, pyplot must draw with Agg)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1, 2], [value, value + 1, value * 2])
    return fig


def frame_of(value: int) -> pd.DataFrame:
    return pd.DataFrame({"value": [value, value + 1], "half": [value / 2, value / 3]})


@stage(outputs=["number"], cachers=[PickleCacher()])
def describe(record: Record) -> int:
    """Reports with every built-in reporter."""
    _mark(record, "describe")
    value = record.params.value
    record.report(HTMLReporter(f"<p>value {value}</p>", name="html"))
    record.report(JsonReporter({"value": value, "<tag>": "a<b"}, name="json", group="numbers"))
    record.report(DFReporter(frame_of(value), name="frame", float_prec=2))
    record.report(LatexTableReporter(frame_of(value), name="latex"))
    figure = figure_of(value)
    record.report(FigureReporter(figure, name="figure"))
    import matplotlib.pyplot as plt

    plt.close(figure)
    record.report(LinePlotReporter(y={"a": [1, 2, value], "b": [3, 2, 1]}, name="lines"))
    image = record.get_path("picture.png")
    Path(image).write_bytes(PNG_SIGNATURE + bytes([value]))
    record.report(ImageReporter(image, name="image"))
    record.report(TextReporter(f"text {value}"))  # unnamed: numbered
    return value


@stage(inputs=["number"], outputs=["double"], cachers=[PickleCacher()])
def double(record: Record, number: int) -> int:
    """Reports once, unnamed, after a stage that reported several."""
    _mark(record, "double")
    record.report(JsonReporter({"double": number * 2}))
    return number * 2


@stage(inputs=["number"], outputs=["quiet"], cachers=[PickleCacher()])
def quiet(record: Record, number: int) -> int:
    """Reports nothing."""
    _mark(record, "quiet")
    return number


@stage(outputs=["uncached"])
def uncached(record: Record) -> int:
    """Reports, without a cacher: it runs every time."""
    record.report(HTMLReporter("<b>uncached</b>", name="uncached"))
    return 1


@stage(outputs=["bad"])
def report_unpicklable(record: Record) -> int:
    record.report(Unpicklable())
    return 1


@stage(outputs=["backend"])
def plotting_backend(record: Record) -> str:
    """The backend pyplot chose in the process running the stage."""
    import matplotlib.pyplot as plt

    return str(plt.get_backend())


@aggregate(inputs=["double"], outputs=["total"], cachers=[PickleCacher()])
def total(record: Record, records: list[Record], double: dict[Record, int]) -> int:
    """An aggregate that reports a table and a plot."""
    _mark(record, "total")
    values = [double[key] for key in sorted(double, key=lambda r: r.name)]
    record.report(DFReporter(pd.DataFrame({"double": values}), name="doubles"))
    record.report(LinePlotReporter(y=values, x=list(range(len(values))), name="trend"))
    return sum(values)


def experiment(param_sets: list[Plot], manager: Any) -> None:
    for params in param_sets:
        quiet(double(describe(Record(manager, params))))
    total(Record(manager, param_sets[0] if param_sets else None))


def no_figures_pickled(obj: Any) -> bool:
    """Whether pickling ``obj`` takes no matplotlib figure along (a pickled figure names
    its class's module; a PNG names only "Matplotlib" and its web site)."""
    return b"matplotlib.figure" not in pickle.dumps(obj)


def pid() -> int:
    return os.getpid()
