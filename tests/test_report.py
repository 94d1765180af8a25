"""The HTML run report: written when a run ends, one folder per run, an index of runs.

Each test reads the page a user would open: the parameter table (values, outcome, error
and traceback), the worker timeline (a lane per worker, a bar per stage run, how each went),
the stage graph, the reportables, and the index listing every run.
"""

import json
import logging
import re
import socket
import xml.etree.ElementTree as ET

import pytest

from parafactory import ArtifactManager, Record
from parafactory._core.events import ChainRan, Events, RecordFailed, RunFinished, RunStarted
from parafactory._run.report import RunObserver
from parafactory._run.report.timeline import MAX_BARS, timeline_svg
from report_run_stages import points, square, sweep

HOST = socket.gethostname()


def page_of(manager):
    return (manager.reports_dir / manager.reference / "index.html").read_text(encoding="utf-8")


def svg_in(page, label):
    found = re.search(rf'<svg [^>]*aria-label="{label}".*?</svg>', page, re.S)
    assert found, f"no {label} in the page"
    return ET.fromstring(found.group(0))


def lanes(svg):
    return {g.get("data-lane"): g for g in svg.iter() if "data-lane" in g.attrib}


def bars(svg):
    """(lane, record, stage, classes) of every bar."""
    return sorted(
        (name, bar.get("data-record"), bar.get("data-stage"), bar.get("class"))
        for name, lane in lanes(svg).items()
        for bar in lane.iter()
        if "data-bar" in bar.attrib
    )


def row_of(page, name):
    found = re.search(rf"<tr class='pf-row-(\w+)' data-record='{name}'>(.*?)</tr>", page, re.S)
    assert found, f"no row for {name}"
    return found.group(1), found.group(2)


def test_a_run_writes_its_report_with_every_record_and_stage(make_manager, backend):
    manager = make_manager("sweep")
    records = manager.run(sweep, points(5, fail_at=3), errors="continue", progress=False, **backend)
    page = page_of(manager)

    for fact in (manager.reference, "command line", "wall time", "git", "Python"):
        assert fact in page
    assert "data-failed='1'" in page and "data-computed='5'" in page  # 4 points + the total
    outcome, cells = row_of(page, "p3")
    assert outcome == "failed"
    assert "ValueError: x is 3, the value this test fails at" in cells and "Traceback" in cells
    outcome, cells = row_of(page, "p4")
    assert outcome == "computed" and "<code>4</code>" in cells  # its x

    timeline = svg_in(page, "worker timeline")
    workers = {f"{HOST}:{record.state['pid']}" for record in records[:5]}
    assert {n for n, g in lanes(timeline).items() if g.get("data-kind") == "worker"} == workers
    ran = [(lane, record, stage) for lane, record, stage, _ in bars(timeline)]
    expected = [
        (f"{HOST}:{r.state['pid']}", r.name, s) for r in records[:5] for s in ("square", "halve")
    ]
    assert sorted(ran) == sorted([*expected, ("parent", records[5].name, "total")])
    failed = [(record, stage) for _, record, stage, css in bars(timeline) if "pf-failed" in css]
    assert failed == [("p3", "halve")]


def test_a_cached_rerun_shows_its_cache_hits(make_manager):
    first = make_manager("cached")
    first.map(points(3), [square], n_jobs=2, progress=False)
    again = make_manager("cached")
    again.map(points(3), [square], n_jobs=2, progress=False)
    page = page_of(again)

    assert "data-cached='3'" in page
    assert row_of(page, "p1")[0] == "cached"
    timeline = svg_in(page, "worker timeline")
    assert bars(timeline) == []
    hits = [e for e in timeline.iter() if "data-hit" in e.attrib]
    assert len(hits) == 3 and lanes(timeline)["parent"].get("data-kind") == "parent"


def test_stages_partly_cached_are_drawn_as_cached(make_manager):
    make_manager("partly").run(sweep, points(2), n_jobs=1, progress=False)
    again = make_manager("partly")
    again.run(sweep, points(2), n_jobs=1, progress=False)
    found = {
        (record, stage): css
        for _, record, stage, css in bars(svg_in(page_of(again), "worker timeline"))
    }
    assert "pf-cached" in found[("p0", "square")] and "pf-cached" not in found[("p0", "halve")]
    assert "1 of 2 cached" in row_of(page_of(again), "p0")[1]


@pytest.mark.parametrize("backend", ["loky"], indirect=True)
def test_a_lost_worker_and_its_retry_show_in_the_timeline(make_manager, backend, tmp_path):
    manager = make_manager("lost")
    manager.run(sweep, points(4, die_once_in=str(tmp_path)), progress=False, **backend)
    timeline = svg_in(page_of(manager), "worker timeline")
    assert [e for e in timeline.iter() if "data-lost" in e.attrib]
    retried = [stage for _, _, stage, css in bars(timeline) if "pf-retry" in css]
    assert "halve" in retried


def test_the_index_lists_every_run_newest_first_and_latest_opens_the_last(make_manager):
    first = make_manager("indexed")
    first.run(sweep, points(2, fail_at=1), n_jobs=1, errors="continue", progress=False)
    second = make_manager("indexed")
    second.run(sweep, points(2), n_jobs=1, progress=False)
    index = (first.reports_dir / "index.html").read_text(encoding="utf-8")

    runs = re.findall(r"<tr data-run=''><td><a href='([^']+)/index.html'>", index)
    assert runs == [second.reference, first.reference]
    assert "data-failed='1'" in index.split(first.reference)[-1]
    latest = (first.reports_dir / "_latest" / "index.html").read_text(encoding="utf-8")
    assert f"<base href='../{second.reference}/'>" in latest and "indexed – run 2" in latest
    facts = json.loads((second.reports_dir / second.reference / "run.json").read_text())
    assert facts["outcomes"] == {"computed": 3, "cached": 0, "failed": 0, "skipped": 0}


def test_reportables_are_rendered_into_the_run_folder_grouped_by_record(make_manager):
    manager = make_manager("pictures")
    manager.run(sweep, points(2, picture="figures"), n_jobs=1, progress=False)
    pictures = manager.reportables
    assert len(pictures) == 2
    manager.write_report()
    folder = manager.reports_dir / manager.reference
    page = page_of(manager)

    for picture in pictures:
        assert set(picture.rendered_into) == {str(folder / "reportables")}
        assert (folder / "reportables" / f"{picture.qualified_name}.png").is_file()
        assert f"<img src='reportables/{picture.qualified_name}.png'>" in page
    toc = re.search(r"<ul class='pf-toc'>(.*?)</ul></li></ul>", page, re.S).group(0)
    assert toc.index("p0_square_pic") < toc.index("p1") < toc.index("p1_square_pic")


def test_values_from_the_user_are_escaped(make_manager):
    manager = make_manager("escaped")
    manager.run(sweep, points(1, label="<script>alert('x')</script>"), n_jobs=1, progress=False)
    page = page_of(manager)
    assert "<script>" not in page
    assert "&lt;script&gt;" in page


def test_a_dry_run_writes_no_report(tmp_path):
    manager = ArtifactManager("dry", root=tmp_path, dry=True)
    manager.run(sweep, points(2), n_jobs=1, progress=False)
    manager.close()
    assert list(tmp_path.iterdir()) == []


def test_a_report_that_cannot_be_written_does_not_lose_the_run(make_manager, caplog):
    manager = make_manager("broken")
    with caplog.at_level(logging.WARNING, logger="parafactory"):
        records = manager.run(sweep, points(2, picture="broken"), n_jobs=1, progress=False)
    assert records[1].state["half"] == 0.5
    assert "the run's report could not be written" in caplog.text
    with pytest.raises(RuntimeError, match="cannot be drawn"):
        manager.write_report()


def test_the_stage_graph_shows_stages_state_and_what_aggregates_read(make_manager):
    manager = make_manager("graph")
    manager.run(sweep, points(3), n_jobs=1, progress=False)
    graph = svg_in(page_of(manager), "stage graph")
    columns = [g.get("data-record-node") for g in graph.iter() if "data-record-node" in g.attrib]
    assert columns[:3] == ["p0", "p1", "p2"] and len(columns) == 4
    stages = [e.get("data-stage-node") for e in graph.iter() if "data-stage-node" in e.attrib]
    assert stages == ["square", "halve"] * 3 + ["total"]
    state = [e.get("data-state") for e in graph.iter() if "data-state" in e.attrib]
    assert state == ["square", "pid", "half"] * 3 + ["total"]
    edges = [
        e.find("{http://www.w3.org/2000/svg}title").text
        for e in graph.iter()
        if "data-edge" in e.attrib
    ]
    assert edges == ["half → total"] * 3


def test_a_large_sweep_shares_columns_in_the_stage_graph(make_manager):
    manager = make_manager("wide")
    manager.run(sweep, points(40), n_jobs=1, progress=False)
    graph = svg_in(page_of(manager), "stage graph")
    columns = {
        g.get("data-record-node"): g.get("data-records")
        for g in graph.iter()
        if "data-records" in g.attrib
    }
    assert list(columns.values()) == ["40", "1"]


def crowded_observer(records, workers=2, stages=("a", "b")):
    """An observer fed the events of a run of ``records`` on ``workers``: each stage 10 ms,
    the last record's last stage failed."""
    observer, events = RunObserver(), Events()
    observer.follow(events, [])
    events.publish(RunStarted(len(records), len(records), workers, 0.0))
    for index, record in enumerate(records):
        start = (index // workers) * 0.01 * len(stages)
        timings = [
            (s, start + 0.01 * k, start + 0.01 * (k + 1), False) for k, s in enumerate(stages)
        ]
        events.publish(ChainRan(record, f"host:{index % workers}", timings))
    events.publish(RecordFailed(records[-1], stages[-1], ValueError("no"), timings[-1][2]))
    events.publish(RunFinished("done", False, timings[-1][2]))
    return observer


def made_records(count):
    """``count`` records of a dry manager, made eagerly (no run)."""
    manager = ArtifactManager("made", dry=True)
    return [Record(manager, params) for params in points(count)]


def test_a_crowded_lane_becomes_a_density_strip_keeping_its_failures():
    timeline = ET.fromstring(timeline_svg(crowded_observer(made_records(2000))))
    found = lanes(timeline)
    assert set(found) == {"host:0", "host:1"}
    for lane in found.values():
        assert lane.get("data-density") == "1" and lane.get("data-bars") == "2000"
        assert not [e for e in lane.iter() if "data-bar" in e.attrib]
        assert len([e for e in lane.iter() if e.get("class") == "pf-density"]) <= 960 // 2
    flagged = [e.get("data-record") for e in timeline.iter() if "data-flag" in e.attrib]
    assert flagged == ["p1999"]


def test_a_lane_with_room_draws_every_bar():
    observer = crowded_observer(made_records(MAX_BARS), stages=("a",))
    found = lanes(ET.fromstring(timeline_svg(observer)))
    assert len(found) == 2
    for lane in found.values():
        assert lane.get("data-density") == "0"
        assert len([e for e in lane.iter() if "data-bar" in e.attrib]) == MAX_BARS // 2


def test_report_false_leaves_the_report_to_write_report(make_manager, tmp_path):
    manager = make_manager("unreported", report=False)
    manager.run(sweep, points(2), n_jobs=1, progress=False)
    assert not (tmp_path / "reports").exists()
    assert manager.write_report() == tmp_path / "reports" / manager.reference / "index.html"
