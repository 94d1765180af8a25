"""``record.state`` never leaks internals: every way of reading it gives the values.

A stage with three cached outputs (``number``, ``table`` and ``Lazy("blob")``) runs
eagerly, on ``n_jobs=1`` and on loky ``n_jobs=2``, then again fully cached. Each way of
reading the state must give the stage's values on both runs, load what is on disk on
first use (``blob`` exactly once, counted by ``cache_stages.CountingCacher``), and never
hand back a ``parafactory._model.cache.Artifact``.
"""

from __future__ import annotations

import copy
import json
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cache_stages import cache_dir_of, executions, loads, manager_for
from parafactory import Record
from parafactory._model.cache import Artifact
from state_stages import items, produce, produce_compare_halve

pytestmark = pytest.mark.timeout(120)

KEYS = ("number", "table", "blob")
PARAMS = (("a", 2), ("b", 3))
HOWS = ["eager", "n_jobs=1", "loky n_jobs=2"]


def expected_state(name: str, value: int) -> dict[str, Any]:
    """What ``produce`` stores for a parameter set, worked out by hand."""
    squares = {2: [0, 1, 4], 3: [0, 1, 4, 9]}[value]
    return {"number": 3 * value, "table": {"name": name, "squares": squares}, "blob": [value] * 4}


def run_produce(directory: Path, how: str) -> list[Record]:
    """Run ``produce`` on every parameter set of ``PARAMS``, caching under ``directory``."""
    manager = manager_for(directory)
    param_sets = items(directory / "markers", *PARAMS)
    if how == "eager":
        return [produce(Record(manager, params)) for params in param_sets]
    n_jobs = 1 if how == "n_jobs=1" else 2
    return manager.map(param_sets, [produce], n_jobs=n_jobs, progress=False)


def unloaded(state: dict[str, Any], key: str) -> bool:
    return isinstance(dict.__getitem__(state, key), Artifact)


def artifacts_in(value: Any) -> list[Any]:
    """Every ``Artifact`` reachable from ``value`` through its public interface."""
    if isinstance(value, Artifact):
        return [value]
    if isinstance(value, dict):
        return [found for pair in value.items() for part in pair for found in artifacts_in(part)]
    if isinstance(value, (list, tuple, set)):
        return [found for part in value for found in artifacts_in(part)]
    return []


def load_counts(directory: Path) -> dict[str, int]:
    return {key: loads(cache_dir_of(directory), key) for key in KEYS}


# -- the ways of reading a state ------------------------------------------------------------------


def _per_key(read_one: Callable[[Any, str], Any], keeps: bool = True):
    """Read the keys one by one with ``read_one``: the Lazy ``blob`` (read last) stays
    on disk while the others are read."""

    def read(state, expected):
        got = {}
        for key in KEYS:
            if key == "blob":
                assert unloaded(state, "blob"), "reading other outputs loaded the Lazy one"
            got[key] = read_one(state, key)
        return got, expected, state if keeps else None

    return read


def _copied(make_copy: Callable[[Any], Any]):
    """Copy the state, then read the copy: copying alone loads nothing."""

    def read(state, expected):
        copied = make_copy(state)
        assert unloaded(state, "blob"), "copying the state loaded its Lazy output"
        assert unloaded(copied, "blob"), "the copy holds the Lazy output loaded"
        return {key: copied[key] for key in copied}, expected, copied

    return read


def _or_empty(state, expected):
    merged = state | {}
    return {key: merged[key] for key in merged}, expected, merged


def _popitem_all(state, expected):
    pairs = [state.popitem() for _ in range(len(state))]
    return dict(pairs), expected, None


def _comparisons(state, expected):
    other = {**expected, "number": -1}
    got = (state == expected, expected == state, state != expected, state == other)
    return got, (True, True, False, False), state


def _update_into(state, expected):
    target: dict[str, Any] = {}
    target.update(state)
    return target, expected, state


# Each way of reading a state: ``read(state, expected) -> (got, want, holder)``, where
# ``holder`` is the mapping now holding the values read (to read them again), or ``None``
# when the access took them out of the state.
ACCESSES = {
    "getitem": _per_key(lambda s, k: s[k]),
    "get": _per_key(lambda s, k: s.get(k)),
    "dict()": lambda s, e: (dict(s), e, s),
    "copy": _copied(lambda s: s.copy()),
    "items": lambda s, e: (dict(s.items()), e, s),
    "values": lambda s, e: (dict(zip(list(s), s.values(), strict=True)), e, s),
    "pop": _per_key(lambda s, k: s.pop(k), keeps=False),
    "unpack": lambda s, e: ({**s}, e, s),
    "iterate+lookup": lambda s, e: ({k: s[k] for k in s}, e, s),
    "==": _comparisons,
    "json.dumps": lambda s, e: (json.loads(json.dumps(s)), e, s),
    "state | {}": _or_empty,
    "{} | state": lambda s, e: ({} | s, e, s),
    "setdefault": _per_key(lambda s, k: s.setdefault(k, "absent")),
    "popitem": _popitem_all,
    "dict.update(state)": _update_into,
    "copy.copy": _copied(copy.copy),
    "copy.deepcopy": _copied(copy.deepcopy),
    "pickle": _copied(lambda s: pickle.loads(pickle.dumps(s))),
}


def read_and_check(record: Record, access: Callable[..., Any], directory: Path) -> Any:
    """Read ``record.state`` through ``access``: it gives the values, loading ``blob``
    (Lazy) exactly once and nothing more than once; returns what the access gave."""
    name, value = record.params.name, record.params.value
    expected = expected_state(name, value)
    state = record.state
    assert unloaded(state, "blob"), "the Lazy output was loaded before anything read it"
    before = load_counts(directory)

    got, want, holder = access(state, expected)

    assert got == want
    assert artifacts_in(got) == [], f"an access handed back cache internals: {got!r}"
    loaded = {key: count - before[key] for key, count in load_counts(directory).items()}
    assert loaded["blob"] == 1, f"the Lazy output should load once when read: {loaded}"
    assert all(count <= 1 for count in loaded.values()), f"an output loaded twice: {loaded}"
    if holder is not None:  # reading again gives the values without loading them again
        assert {key: holder[key] for key in KEYS} == expected
        assert not any(isinstance(dict.__getitem__(holder, key), Artifact) for key in KEYS)
        assert load_counts(directory) == {k: before[k] + loaded[k] for k in KEYS}
    return got


@pytest.mark.parametrize("how", HOWS)
@pytest.mark.parametrize("access", list(ACCESSES.values()), ids=list(ACCESSES))
def test_every_read_gives_the_values_on_a_first_run_and_a_cached_rerun(tmp_path, how, access):
    first = [read_and_check(r, access, tmp_path) for r in run_produce(tmp_path, how)]
    assert len(executions(tmp_path / "markers", "produce")) == 2

    rerun = run_produce(tmp_path, how)
    assert len(executions(tmp_path / "markers", "produce")) == 2, "the rerun was not cached"
    again = [read_and_check(r, access, tmp_path) for r in rerun]

    assert again == first


@pytest.mark.parametrize("how", HOWS)
def test_repr_shows_values_but_leaves_lazy_outputs_on_disk(tmp_path, how):
    shown = []
    for _ in ("first run", "cached rerun"):
        record = run_produce(tmp_path, how)[0]
        before = loads(cache_dir_of(tmp_path), "blob")

        text = repr(record.state)

        assert str(record.state) == f"{record.state}" == text
        prefix = "{'number': 6, 'table': {'name': 'a', 'squares': [0, 1, 4]}, 'blob': "
        assert text.startswith(prefix) and text.endswith("}"), text
        assert "[2, 2, 2, 2]" not in text and "Lazy" in text, text
        assert unloaded(record.state, "blob")
        assert loads(cache_dir_of(tmp_path), "blob") == before
        assert record.state["blob"] == [2, 2, 2, 2]  # and it still reads as its value
        shown.append(text)
    assert len(executions(tmp_path / "markers", "produce")) == 2
    assert shown[0] == shown[1]


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_a_record_sent_to_a_worker_again_keeps_its_lazy_output_on_disk(tmp_path, n_jobs):
    """After an aggregate, ``halve`` runs on records holding the Lazy ``blob``: sending
    them to a worker must not load it (nothing reads it), on a first run or a rerun."""
    for _ in ("first run", "cached rerun"):
        manager = manager_for(tmp_path)
        param_sets = items(tmp_path / "markers", *PARAMS)
        records = manager.run(produce_compare_halve, param_sets, n_jobs=n_jobs, progress=False)

        assert records[2].state["numbers"] == [6, 9]
        assert [r.state["half"] for r in records[:2]] == [3.0, 4.5]
        assert loads(cache_dir_of(tmp_path), "blob") == 0, "the Lazy output was loaded"
        assert unloaded(records[0].state, "blob") and unloaded(records[1].state, "blob")
    assert len(executions(tmp_path / "markers", "produce")) == 2
    assert records[1].state["blob"] == [3, 3, 3, 3]
