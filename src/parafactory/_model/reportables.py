"""Reportables: what a stage shows in its run's report, with curifactory's names and meanings.

A stage calls ``record.report(reportable)``; the reportable joins its record (for the
stage that made it) and the manager lists it in ``manager.reportables``. A report writer
sets ``reportable.path`` to a folder and calls :meth:`Reportable.render` (which writes the
reportable's files there), then sets ``path`` to that folder as the page sees it and
calls :meth:`Reportable.html`.

A reportable made in a worker travels back with its record's result, and a cached stage
keeps its reportables with its outputs, so they come back on a cached rerun. So that
both are cheap and safe, reporters that show a picture hold bytes, never the object
that drew them: a matplotlib figure is rendered to PNG (or the ``format`` asked for) when
the reporter is made, in the worker that made it; an image file is read then too.

``pandas`` and ``matplotlib`` are optional (``pip install 'parafactory[report]'``).
"""

from __future__ import annotations

import copy as copy_module
import html
import importlib
import io
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._errors import ReporterUnavailableError
from .cache import Cacher, PickleCacher

if TYPE_CHECKING:
    from .records import Record

REPORTABLES = "<reportables>"
"""The name a stage's reportables are cached under, as an extra of its entry (no output
of a stage can be named so by accident)."""


class Reportable:
    """The base of every reportable; subclass it to show something of your own.

    ``name`` titles it in the report (unnamed ones are numbered); reportables with the
    same ``group`` are shown together. ``record.report(...)`` sets ``record``, ``stage``
    and ``qualified_name`` (``[(Aggregate)_][params name_]stage_name-or-number``, the
    name to give its files). Override :meth:`html`, and :meth:`render` if it writes
    files, into the folder ``self.path``. What it holds must pickle: it may travel back
    from a worker and is cached with its stage's outputs.

    >>> class TextReporter(Reportable):
    ...     def __init__(self, text, name=None, group=None):
    ...         self.text = text
    ...         super().__init__(name=name, group=group)
    ...     def render(self):
    ...         Path(self.path, f"{self.qualified_name}.txt").write_text(self.text)
    ...     def html(self):
    ...         return f"<a href='{self.path}/{self.qualified_name}.txt'>{self.name}</a>"
    """

    def __init__(self, name: str | None = None, group: str | None = None) -> None:
        self.rendered = False
        self.path = ""  # set by the report writer: where render() writes, what html() links
        self.name = name
        self.qualified_name = name or ""
        self.group = group
        self.record: Record | None = None
        self.stage = ""

    def html(self) -> str | list[str]:
        """The HTML fragment that shows this reportable (a string, or a list of lines);
        files it wrote in :meth:`render` are ``f"{self.path}/..."``."""
        raise NotImplementedError(
            f"{type(self).__name__} must override html() to return the HTML that shows it"
        )

    def render(self) -> None:
        """Write the files :meth:`html` refers to into the folder ``self.path`` (none here)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.qualified_name!r}>"


class HTMLReporter(Reportable):
    """A raw string (or list of lines) of HTML, shown as it is.

    >>> record.report(HTMLReporter("<h1>Hello world!</h1>"))
    """

    def __init__(
        self, html_string: str | list[str], name: str | None = None, group: str | None = None
    ) -> None:
        self.html_string = html_string
        super().__init__(name=name, group=group)

    def html(self) -> str | list[str]:
        return self.html_string


class JsonReporter(Reportable):
    """A dictionary (or anything JSON can write; other values as ``str``), indented.

    >>> record.report(JsonReporter({"accuracy": 0.93, "epochs": 10}, name="scores"))
    """

    def __init__(self, dictionary: Any, name: str | None = None, group: str | None = None) -> None:
        self.data = dictionary
        super().__init__(name=name, group=group)

    def html(self) -> list[str]:
        return ["<pre>", _text(json.dumps(self.data, indent=4, default=str)), "</pre>"]


class DFReporter(Reportable):
    """A pandas DataFrame as an HTML table, floats rounded to ``float_prec`` digits.

    >>> record.report(DFReporter(results_df, name="results"))
    """

    def __init__(
        self, df: Any, name: str | None = None, group: str | None = None, float_prec: int = 4
    ) -> None:
        _require("pandas", "DFReporter")
        self.df = df
        self.float_prec = float_prec
        super().__init__(name=name, group=group)

    def html(self) -> list[str]:
        lines = ["<table border='1' cellspacing='0'><tr><th></th>"]
        lines += [f"<th>{_text(str(column))}</th>" for column in self.df.columns]
        lines.append("</tr>")
        for index, row in self.df.iterrows():
            lines += ["<tr>", f"<th>{_text(str(index))}</th>"]
            lines += [f"<td align='right'><pre>{self._cell(item)}</pre></td>" for item in row]
            lines.append("</tr>")
        lines.append("</table>")
        return lines

    def _cell(self, item: Any) -> str:
        import numpy  # pandas's own dependency

        if isinstance(item, (float, numpy.floating)):
            return f"{item:.{self.float_prec}f}"
        return _text(str(item))


class LatexTableReporter(Reportable):
    """A pandas DataFrame as LaTeX source, to copy into a paper; ``kwargs`` go to
    pandas' ``Styler.to_latex``.

    >>> record.report(LatexTableReporter(results_df, name="table", hrules=True))
    """

    def __init__(
        self, df: Any, name: str | None = None, group: str | None = None, **kwargs: Any
    ) -> None:
        _require("pandas", "LatexTableReporter")
        _require("jinja2", "LatexTableReporter")  # pandas' Styler writes LaTeX with it
        self.df = df
        self.kwargs = kwargs
        super().__init__(name=name, group=group)

    def html(self) -> list[str]:
        return ["<pre>", _text(self.df.style.to_latex(**self.kwargs)), "</pre>"]


class _PictureReporter(Reportable):
    """A picture held as bytes: :meth:`render` writes ``{qualified_name}{suffix}``."""

    data: bytes
    suffix: str

    def render(self) -> None:
        Path(self.path, f"{self.qualified_name}{self.suffix}").write_bytes(self.data)

    def html(self) -> str:
        return f"<img src='{self.path}/{self.qualified_name}{self.suffix}'>"


class FigureReporter(_PictureReporter):
    """A matplotlib figure, rendered now (``kwargs`` go to its ``savefig``; ``format``
    is ``"png"`` unless given): the reporter holds the picture, not the figure, so a
    figure drawn in a worker comes back as a file.

    >>> fig, ax = plt.subplots()
    >>> lines = ax.plot(losses)
    >>> record.report(FigureReporter(fig, name="losses"))
    """

    def __init__(
        self, fig: Any, name: str | None = None, group: str | None = None, **kwargs: Any
    ) -> None:
        _require("matplotlib", "FigureReporter")
        self.kwargs = {"format": "png", **kwargs}
        self.suffix = f".{self.kwargs['format']}"
        self.data = _figure_bytes(fig, self.kwargs)
        super().__init__(name=name, group=group)


class LinePlotReporter(_PictureReporter):
    """Line plots of ``y`` (a list or array, or a dict of them: one line each, keys in
    the legend), against ``x`` (the same shape) if given; drawn now, with matplotlib's
    Agg renderer, without pyplot (nothing of the process's plotting state changes).
    ``plot_kwargs`` go to each ``plot`` call, ``savefig_kwargs`` to ``savefig``.

    >>> record.report(LinePlotReporter(y={"train": train_loss, "test": test_loss}))
    """

    def __init__(
        self,
        y: Any,
        x: Any = None,
        name: str | None = None,
        group: str | None = None,
        plot_kwargs: Mapping[str, Any] | None = None,
        savefig_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        figure_module = _require("matplotlib.figure", "LinePlotReporter")
        self.plot_kwargs = dict(plot_kwargs or {})
        self.savefig_kwargs = {"format": "png", **(savefig_kwargs or {})}
        self.suffix = f".{self.savefig_kwargs['format']}"
        figure = figure_module.Figure(facecolor="white")
        _plot_lines(figure.add_subplot(), y, x, self.plot_kwargs)
        self.data = _figure_bytes(figure, self.savefig_kwargs)
        super().__init__(name=name, group=group)


class ImageReporter(_PictureReporter):
    """An image file, read now (so the report shows it even if the file goes later).

    >>> record.report(ImageReporter(record.get_path("confusion.png")))
    """

    def __init__(self, image_path: str, name: str | None = None, group: str | None = None) -> None:
        self.image_path = str(image_path)
        self.suffix = os.path.splitext(self.image_path)[1]
        self.data = Path(image_path).read_bytes()
        super().__init__(name=name, group=group)


def _text(text: str) -> str:
    """``text`` shown as it is in HTML (``<``, ``>`` and ``&`` escaped)."""
    return html.escape(text, quote=False)


def _require(module: str, reporter: str) -> Any:
    """Import ``module`` for ``reporter``, or say which extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        package = module.split(".")[0]
        raise ReporterUnavailableError(
            f"{reporter} needs {package}, which is not installed: pip install 'parafactory[report]'"
        ) from error


def _figure_bytes(figure: Any, savefig_kwargs: dict[str, Any]) -> bytes:
    """``figure`` rendered as a file's bytes (savefig renders to a file with Agg, whatever
    the figure's interactive backend)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, **savefig_kwargs)
    return buffer.getvalue()


def _plot_lines(axes: Any, y: Any, x: Any, plot_kwargs: dict[str, Any]) -> None:
    """curifactory's line plot: one line per key of a dict (with a legend), or one line."""
    if isinstance(y, Mapping):
        for key, values in y.items():
            axes.plot(*([] if x is None else [x[key]]), values, label=key, **plot_kwargs)
        axes.legend()
    else:
        axes.plot(*([] if x is None else [x]), y, **plot_kwargs)
    axes.grid(True)


class ReportablesCacher(PickleCacher):
    """A stage's reportables, kept with its cached outputs (without their record) in
    ``{prefix}_{hash}_{stage}_reportables/``, where curifactory keeps them."""

    def save(self, obj: Any, path: Path) -> None:
        super().save([_without_record(reportable) for reportable in obj], path)

    def path(self, directory: Path, prefix: str, record_hash: str, stage: str, output: str) -> Path:
        return directory / f"{prefix}_{record_hash}_{stage}_reportables" / "reportables.pkl"


CACHED_REPORTABLES: tuple[tuple[str, Cacher], ...] = ((REPORTABLES, ReportablesCacher()),)
"""The extra outputs every cache entry may hold: its stage's reportables."""


def _without_record(reportable: Reportable) -> Reportable:
    """A shallow copy without its record, which stays where it is (curifactory's way)."""
    copy = copy_module.copy(reportable)
    copy.record = None
    return copy


def report_on(record: Record, reportable: Reportable) -> None:
    """``record.report(reportable)``: the reportable joins ``record``, for the stage running."""
    if not isinstance(reportable, Reportable):
        raise TypeError(
            f"record.report() takes a Reportable (e.g. JsonReporter(...)), got "
            f"{type(reportable).__name__}"
        )
    running = record._running
    stage = running[0] if running is not None else (record.stages or [""])[-1]
    _add(record, stage, reportable)


def replace(record: Record, stage: str, reportables: Iterable[Reportable]) -> None:
    """Make ``reportables`` (from a worker or the cache) those of ``stage`` on ``record``:
    a stage that runs again replaces what it reported before."""
    forget(record, stage)
    for reportable in reportables:
        _add(record, stage, reportable)


def forget(record: Record, stage: str) -> None:
    """Drop what ``stage`` reported on ``record`` (it is about to run again)."""
    if record._reportables:
        record._reportables.pop(stage, None)


def _add(record: Record, stage: str, reportable: Reportable) -> None:
    """Add ``reportable`` to what ``stage`` reported on ``record``, and name it."""
    if not record._reportables:
        record._reportables = {}
    record._reportables.setdefault(stage, []).append(reportable)
    reportable.record, reportable.stage = record, stage
    joined = getattr(record.manager, "_joined", None)  # the manager's, in the parent
    number = joined(record) if joined is not None else len(record.reportables) - 1
    qualify(reportable, number)


def qualify(reportable: Reportable, number: int) -> None:
    """Set ``reportable.qualified_name`` as curifactory does: ``(Aggregate)_`` on an
    aggregate's record, the parameters' name, the stage, and the reportable's name, or
    ``number`` for one without."""
    record = reportable.record
    parts = []
    if record is not None and record.is_aggregate:
        parts.append("(Aggregate)")
    if record is not None and record.params is not None:
        parts.append(record.params.name)
    parts += [reportable.stage, reportable.name if reportable.name is not None else str(number)]
    reportable.qualified_name = "_".join(parts)


def travelling(reportables: dict[str, list[Reportable]]) -> dict[str, list[Reportable]] | None:
    """What a worker sends back of its copy of a record's reportables: without the copy
    (the parent gives them its own record), ``None`` when there are none."""
    if not reportables:
        return None
    for listed in reportables.values():
        for reportable in listed:
            reportable.record = None
    return reportables


def worker_environment() -> dict[str, str]:
    """Environment for pool workers: pyplot there draws with Agg (no windows, no display
    needed), unless the user chose a backend with ``MPLBACKEND``."""
    return {} if "MPLBACKEND" in os.environ else {"MPLBACKEND": "Agg"}
