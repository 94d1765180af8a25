"""Reportables: ``record.report(...)`` in stages and aggregates, eager and on every
backend, back from workers as files, kept in the cache, never listed twice."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import report_stages as rs
from parafactory import (
    DFReporter,
    FigureReporter,
    HTMLReporter,
    ImageReporter,
    JsonReporter,
    LatexTableReporter,
    LinePlotReporter,
    Record,
    Reportable,
    ReporterUnavailableError,
    UnpicklableOutputError,
)

NAMES = [
    "p0_describe_html",
    "p0_describe_json",
    "p0_describe_frame",
    "p0_describe_latex",
    "p0_describe_figure",
    "p0_describe_lines",
    "p0_describe_image",
    "p0_describe_7",  # unnamed: numbered by its place in manager.reportables
    "p0_double_8",
    "p1_describe_html",
    "p1_describe_json",
    "p1_describe_frame",
    "p1_describe_latex",
    "p1_describe_figure",
    "p1_describe_lines",
    "p1_describe_image",
    "p1_describe_16",
    "p1_double_17",
    "(Aggregate)_p0_total_doubles",
    "(Aggregate)_p0_total_trend",
]


def rendered(reportable: Reportable, folder: Path) -> str:
    """What a report writer does: render into ``folder``, then the HTML as the page sees it."""
    folder.mkdir(parents=True, exist_ok=True)
    reportable.path = str(folder)
    reportable.render()
    reportable.path = "reportables"
    shown = reportable.html()
    return "\n".join(shown) if isinstance(shown, list) else shown


def by_name(manager) -> dict[str, Reportable]:
    return {reportable.qualified_name: reportable for reportable in manager.reportables}


def check_reportables(manager, records: list[Record], folder: Path) -> None:
    """Every reportable of ``experiment`` on two parameter sets: listed in order, attached
    to the parent's records, and shown as curifactory's reporters show them."""
    assert [reportable.qualified_name for reportable in manager.reportables] == NAMES
    for reportable in manager.reportables:
        assert any(reportable.record is record for record in manager.records)
    assert [r.stage for r in manager.reportables[7:9]] == ["describe", "double"]
    shown = {name: rendered(reportable, folder) for name, reportable in by_name(manager).items()}
    assert shown["p1_describe_html"] == "<p>value 1</p>"
    assert "&lt;tag&gt;" in shown["p1_describe_json"] and '"value": 1' in shown["p1_describe_json"]
    assert "<td align='right'><pre>0.50</pre></td>" in shown["p1_describe_frame"]
    assert "\\begin{tabular}" in shown["p1_describe_latex"]
    for name, suffix in [("figure", ".png"), ("lines", ".png"), ("image", ".png")]:
        file_name = f"p1_describe_{name}{suffix}"
        assert shown[f"p1_describe_{name}"] == f"<img src='reportables/{file_name}'>"
        assert (folder / file_name).read_bytes().startswith(rs.PNG_SIGNATURE)
    assert (folder / "p1_describe_image.png").read_bytes() == rs.PNG_SIGNATURE + bytes([1])
    assert (folder / "p1_describe_16.txt").read_text() == "text 1"
    assert "<th>double</th>" in shown["(Aggregate)_p0_total_doubles"]
    assert (folder / "(Aggregate)_p0_total_trend.png").read_bytes().startswith(rs.PNG_SIGNATURE)
    aggregate_record = records[-1]
    assert [r.qualified_name for r in aggregate_record.reportables] == NAMES[-2:]
    unnamed = [reportable.name for reportable in records[0].reportables][7:]
    assert unnamed == [None, None]


def test_reporters_in_stages_and_aggregates_come_back_from_every_backend(
    backend, make_manager, tmp_path
):
    manager = make_manager("reports", console_log=False)
    records = manager.run(rs.experiment, rs.sweep(tmp_path / "marks", 2), progress=False, **backend)
    check_reportables(manager, records, tmp_path / "report")
    for reportable in manager.reportables:
        assert rs.no_figures_pickled(reportable)


def test_eager_stages_and_aggregates_report(make_manager, tmp_path):
    manager = make_manager("eager", console_log=False)
    rs.experiment(rs.sweep(tmp_path / "marks", 2), manager)
    records = manager.records
    check_reportables(manager, records, tmp_path / "report")


@pytest.mark.parametrize("backend", ["inprocess", "loky", "dask"], indirect=True)
def test_reportables_come_back_with_cached_outputs(backend, make_manager, tmp_path):
    marks = tmp_path / "marks"
    first = make_manager("reports", console_log=False)
    first.run(rs.experiment, rs.sweep(marks, 2), progress=False, **backend)
    figure = by_name(first)["p1_describe_figure"].data
    again = make_manager("reports", console_log=False)
    records = again.run(rs.experiment, rs.sweep(marks, 2), progress=False, **backend)
    assert [rs.executions(marks, s) for s in ("describe", "double", "total")] == [2, 2, 1]
    check_reportables(again, records, tmp_path / "report")
    assert by_name(again)["p1_describe_figure"].data == figure


def cached_then_uncached(param_sets, manager):
    """The cached chain, then a stage without cachers: the chain goes to a worker, which
    loads the cached stages' outputs and reportables there."""
    for params in param_sets:
        rs.uncached(rs.quiet(rs.double(rs.describe(Record(manager, params)))))


@pytest.mark.parametrize("backend", ["loky", "dask"], indirect=True)
def test_reportables_loaded_from_the_cache_in_a_worker_come_back(backend, make_manager, tmp_path):
    marks = tmp_path / "marks"
    make_manager("reports", console_log=False).run(
        rs.experiment, rs.sweep(marks, 2), progress=False, **backend
    )
    manager = make_manager("reports", console_log=False)
    records = manager.run(cached_then_uncached, rs.sweep(marks, 2), progress=False, **backend)
    assert rs.executions(marks, "describe") == 2
    names = [reportable.qualified_name for reportable in manager.reportables]
    p1 = [*NAMES[9:16], "p1_describe_17", "p1_double_18"]  # unnamed: numbered by place
    assert names == [*NAMES[:9], "p0_uncached_uncached", *p1, "p1_uncached_uncached"]
    assert all(any(r.record is record for record in records) for r in manager.reportables)


def test_running_a_stage_again_on_a_record_replaces_what_it_reported(make_manager, tmp_path):
    manager = make_manager("eager", console_log=False)
    record = Record(manager, rs.sweep(tmp_path / "marks", 1)[0])
    rs.describe(record)
    rs.describe(record)
    rs.uncached(record)
    rs.uncached(record)
    names = [reportable.qualified_name for reportable in manager.reportables]
    assert names == [*NAMES[:7], "p0_describe_15", "p0_uncached_uncached"]  # 15: reported 16th
    assert record.reportables == manager.reportables


def test_a_dry_run_reports_and_caches_nothing(make_manager, tmp_path):
    manager = make_manager("dry", dry=True, console_log=False)
    records = manager.run(rs.experiment, rs.sweep(tmp_path / "marks", 2), n_jobs=2, progress=False)
    check_reportables(manager, records, tmp_path / "report")
    assert not (tmp_path / "data" / "cache").exists()


def test_a_hidden_record_reports_after_the_listed_ones(make_manager, tmp_path):
    manager = make_manager("hidden", console_log=False)
    params = rs.sweep(tmp_path / "marks", 2)
    hidden = Record(manager, params[1], hide=True)
    rs.double(rs.describe(hidden))
    rs.double(rs.describe(Record(manager, params[0])))
    names = [reportable.qualified_name for reportable in manager.reportables]
    listed = [*NAMES[:7], "p0_describe_16", "p0_double_17"]  # the hidden one reported first
    assert names == [*listed, *NAMES[9:16], "p1_describe_7", "p1_double_8"]
    assert names[9:] == [reportable.qualified_name for reportable in hidden.reportables]


@pytest.mark.parametrize("backend", ["loky", "dask"], indirect=True)
def test_a_figure_drawn_in_a_worker_comes_back_as_bytes(backend, make_manager, tmp_path):
    manager = make_manager("figures", console_log=False)
    manager.run(rs.experiment, rs.sweep(tmp_path / "marks", 2), progress=False, **backend)
    figure = by_name(manager)["p0_describe_figure"]
    assert isinstance(figure.data, bytes) and figure.data.startswith(rs.PNG_SIGNATURE)
    assert not hasattr(figure, "fig")
    assert all(rs.no_figures_pickled(reportable) for reportable in manager.reportables)


def test_pyplot_in_a_pool_worker_draws_with_agg(make_manager, tmp_path):
    manager = make_manager("backend", console_log=False)
    (record,) = manager.map(rs.sweep(tmp_path / "marks", 1), [rs.plotting_backend], n_jobs=2)
    assert record.state["backend"].lower() == "agg"


def test_a_reportable_that_cannot_travel_fails_only_its_record(make_manager, tmp_path):
    manager = make_manager("bad", console_log=False)

    def experiment(param_sets, manager):
        rs.report_unpicklable(Record(manager, param_sets[0]))
        rs.describe(Record(manager, param_sets[1]))

    records = manager.run(
        experiment, rs.sweep(tmp_path / "marks", 2), n_jobs=2, errors="continue", progress=False
    )
    assert isinstance(records[0].error, UnpicklableOutputError)
    assert "unpicklable" in str(records[0].error) and records[0].reportables == []
    assert records[1].error is None and len(records[1].reportables) == 8


def test_a_damaged_reportables_file_recomputes_its_stage(make_manager, tmp_path):
    marks = tmp_path / "marks"
    make_manager("reports", console_log=False).run(rs.experiment, rs.sweep(marks, 2), n_jobs=1)
    (kept,) = (tmp_path / "data" / "cache").glob("*_total_reportables/reportables.pkl")
    kept.write_bytes(b"damaged")
    manager = make_manager("reports", console_log=False)
    manager.run(rs.experiment, rs.sweep(marks, 2), n_jobs=1, progress=False)
    assert rs.executions(marks, "total") == 2 and rs.executions(marks, "describe") == 2
    assert [r.qualified_name for r in manager.reportables] == NAMES


@pytest.mark.parametrize(
    ("missing", "make"),
    [
        (["pandas"], lambda frame, figure: DFReporter(frame)),
        (["pandas"], lambda frame, figure: LatexTableReporter(frame)),
        (["jinja2"], lambda frame, figure: LatexTableReporter(frame)),
        (["matplotlib", "matplotlib.figure"], lambda frame, figure: LinePlotReporter(y=[1, 2])),
        (["matplotlib"], lambda frame, figure: FigureReporter(figure)),
    ],
)
def test_a_reporter_without_its_extra_says_which_to_install(monkeypatch, missing, make):
    frame, figure = rs.frame_of(1), rs.figure_of(1)
    made = make(frame, figure)  # with the extra installed, it works
    assert isinstance(made, Reportable)
    for module in missing:
        monkeypatch.setitem(sys.modules, module, None)  # import now fails
    with pytest.raises(ReporterUnavailableError, match=r"parafactory\[report\]") as raised:
        make(frame, figure)
    assert missing[0] in str(raised.value) and isinstance(raised.value, ImportError)


def test_reporters_without_extras_work_when_pandas_and_matplotlib_are_missing(
    monkeypatch, tmp_path
):
    for module in ("pandas", "matplotlib", "matplotlib.figure", "jinja2"):
        monkeypatch.setitem(sys.modules, module, None)
    image = tmp_path / "a.png"
    image.write_bytes(rs.PNG_SIGNATURE)
    shown = [
        rendered(reporter, tmp_path / "out")
        for reporter in (HTMLReporter("<i>x</i>"), JsonReporter([1]), ImageReporter(str(image)))
    ]
    assert shown[0] == "<i>x</i>" and "1" in shown[1] and shown[2].startswith("<img")


def test_the_reportable_base(tmp_path):
    reportable = Reportable(name="mine", group="g")
    assert (reportable.name, reportable.group, reportable.qualified_name) == ("mine", "g", "mine")
    assert (reportable.path, reportable.stage, reportable.record) == ("", "", None)
    reportable.path = str(tmp_path)
    reportable.render()  # writes nothing
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(NotImplementedError, match="Reportable must override html"):
        reportable.html()


def test_report_takes_a_reportable(make_manager):
    record = Record(make_manager("wrong", console_log=False), None)
    with pytest.raises(TypeError, match="takes a Reportable"):
        record.report("<p>not a reportable</p>")


def test_a_line_plot_leaves_the_processs_plotting_state_alone(tmp_path):
    script = (
        "import sys\n"
        "from parafactory import LinePlotReporter\n"
        "reporter = LinePlotReporter(y=[1, 2, 3])\n"
        "print(reporter.data.startswith(b'\\x89PNG'), 'matplotlib.pyplot' in sys.modules)\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert completed.stdout.split() == ["True", "False"], completed.stderr
