"""The report's parts shown inline in a real Jupyter kernel (nbclient + ipykernel):
``display_info``, ``display_all_reportables``, ``display_record_reportables``,
``display_stage_graph`` and ``display_timeline`` after a run on the loky pool."""

import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

TESTS = Path(__file__).parent


def _cells(root):
    setup = f"""
import sys
sys.path.insert(0, {str(TESTS)!r})
from report_run_stages import PictureReportable, points, sweep
from parafactory import ArtifactManager

manager = ArtifactManager("notebook_report", root={str(root)!r})
records = manager.run(sweep, points(2, picture="figures") + points(4)[2:], n_jobs=2, progress=False)
"""
    return [
        setup,
        "manager.display_info()",
        "manager.display_all_reportables()",
        "manager.display_record_reportables(records[1])",
        "manager.display_stage_graph()",
        "manager.display_timeline()",
    ]


@pytest.fixture(scope="module")
def shown(python3_kernel, tmp_path_factory):
    """Each display cell's rich output (mime type -> content), from one executed notebook."""
    root = tmp_path_factory.mktemp("notebook_report")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in _cells(root)]
    client = nbclient.NotebookClient(
        nb, timeout=120, kernel_name=python3_kernel, resources={"metadata": {"path": str(root)}}
    )
    client.execute()
    results = []
    for cell in nb.cells[1:]:
        data = [o["data"] for o in cell.outputs if o.get("output_type") == "execute_result"]
        assert len(data) == 1, f"expected one displayed result, got {cell.outputs!r}"
        results.append(data[0])
    return results


def test_display_info_shows_the_run_and_its_outcome(shown):
    html = shown[0]["text/html"]
    assert "notebook_report_1_" in html and "5 records" in html and "data-computed='5'" in html


def test_display_all_reportables_carries_each_picture(shown):
    html = shown[1]["text/html"]
    assert html.count("data:image/png;base64,") == 2
    assert html.index("p0_square_pic") < html.index("p1_square_pic")


def test_display_record_reportables_shows_only_that_record(shown):
    html = shown[2]["text/html"]
    assert (
        html.count("data:image/png;base64,") == 1
        and "p1_square_pic" in html
        and "p0_square_pic" not in html
    )


def test_display_stage_graph_is_an_svg_of_the_stages(shown):
    svg = shown[3]["image/svg+xml"]
    stages = re.findall(r'data-stage-node="(\w+)"', svg)
    assert stages == ["square", "halve"] * 4 + ["total"]


def test_display_timeline_is_an_svg_with_a_bar_per_stage(shown):
    svg = shown[4]["image/svg+xml"]
    workers = re.findall(r'data-lane="([^"]+)" data-kind="worker"', svg)
    assert 1 <= len(workers) <= 2
    assert len(re.findall(r"data-bar=", svg)) == 4 * 2 + 1
