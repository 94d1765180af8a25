"""A stage defined where no worker can read it (a notebook cell, code given to ``exec``)
travels by value and still shows its file and source lines in a traceback where it
arrives (issue 13, item 5). The worker's side is played here by unpickling in this process
after forgetting the source, as a fresh worker would not have it."""

from __future__ import annotations

import linecache
import pickle
import traceback

import cloudpickle

from parafactory import stage
from parafactory._model.stages import spec_of

CELL = "<cell-of-a-notebook>"  # a name no process can open, as a notebook cell's
SOURCE = """\
def refuse(x):
    raise ValueError(f"refused {x}")


@stage(outputs=["never"])
def flaky(record):
    return refuse(record)
"""


def define_in_a_cell():
    """``flaky`` as a notebook would define it: compiled from a cell whose lines only
    ``linecache`` knows, in a namespace of its own (pickled by value)."""
    lines = SOURCE.splitlines(keepends=True)
    linecache.cache[CELL] = (len(SOURCE), None, lines, CELL)
    namespace = {"stage": stage, "__name__": "__main__"}
    exec(compile(SOURCE, CELL, "exec"), namespace)
    return spec_of(namespace["flaky"])


def test_a_stage_from_a_cell_shows_its_cell_and_lines_where_it_arrives():
    data = cloudpickle.dumps(define_in_a_cell())
    del linecache.cache[CELL]  # where it arrives, nothing knows the cell

    arrived = pickle.loads(data)
    try:
        arrived.function(7)
    except ValueError:
        shown = traceback.format_exc()
    assert "<dynamic-code>" not in shown
    assert f'File "{CELL}", line 7, in flaky\n    return refuse(record)\n' in shown
    assert f'File "{CELL}", line 2, in refuse\n    raise ValueError(f"refused {{x}}")\n' in shown
    assert shown.endswith("ValueError: refused 7\n")


def test_lines_of_other_stages_of_the_same_cell_are_kept():
    data = cloudpickle.dumps(define_in_a_cell())
    del linecache.cache[CELL]
    linecache.cache[CELL] = (1, None, ["\n"] * 8 + ["# a line another stage brought\n"], CELL)

    pickle.loads(data)
    assert linecache.getline(CELL, 9) == "# a line another stage brought\n"
    assert linecache.getline(CELL, 7) == "    return refuse(record)\n"
    del linecache.cache[CELL]
