"""curifactory 0.20's stage semantics on parafactory: eagerly, and in ``map``/``run`` on every
backend.

Each test pins one rule of the SPEC of curifactory 0.20.5's behaviour
(/work/cf_spec/SPEC.md, written from running curifactory; its item is cited), with values
taken from curifactory's rules, as literals or computed here with hashlib, never from
parafactory's output. In ``run`` the same stage calls are made inside an experiment
function. The stages and parameter classes live in
``compat_stages`` so that worker processes can import them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

import parafactory as cf
from compat_stages import (
    EAGER_OR_RUN,
    EVERY_WAY,
    ModelParams,
    MyModelClass,
    NoneParams,
    Params,
    Returns,
    after_total,
    agg_where,
    agg_x,
    append_orig,
    default_unsuppressed,
    executions,
    inner,
    look,
    make_a,
    make_list,
    make_v,
    make_v_uncached,
    make_x,
    no_default,
    one_output,
    one_output_agg,
    outer,
    seen_hash,
    times_ten,
    total,
    total_w,
    two_outputs,
    two_outputs_agg,
    use_x,
    use_x_cached,
    where,
    with_default,
)
from parafactory import (
    PlanError,
    Record,
    StageDefinitionError,
    StageFailedError,
    StageInputError,
    StageOutputError,
)

pytestmark = pytest.mark.timeout(120)

TESTS = Path(__file__).parent

# (mode, backend): eagerly, then manager.map / manager.run on each backend of conftest.


# -- helpers ------------------------------------------------------------------------------------


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def params_hash(*pairs: tuple[str, str]) -> str:
    """SPEC 8: hex of the sum of md5(f"{field}{repr}") as integers, no zero padding."""
    return f"{sum(int(md5(field + rep), 16) for field, rep in pairs):x}"


def combo(own: str | None, members: list[str | None]) -> str:
    """SPEC 7: md5 of str([own or 'None'] + sorted(member params hash or 'None'))."""
    return md5(str([own or "None", *sorted(h or "None" for h in members)]))


H1, H2, H3 = params_hash(("m", "1")), params_hash(("m", "2")), params_hash(("m", "3"))


def test_spec_hashes_computed_here_match_the_spec_literals():
    assert (H1, H2, H3) == (
        "ae7be26cdaa742ca148068d5ac90eaca",
        "aaf2f89992379705dac844c0a2a1d45f",
        "9678f7a7939f457fa0d9353761e189c7",
    )


def perform(mode, backend, manager, experiment, param_sets, stages=None):
    """Run ``experiment(param_sets, manager)`` eagerly or with ``manager.run``, or ``stages``
    on each parameter set with ``manager.map``; returns the records made."""
    if mode == "eager":
        first = len(manager.records)
        experiment(param_sets, manager)
        return manager.records[first:]
    if mode == "map":
        return manager.map(param_sets, stages, progress=False, **backend)
    return manager.run(experiment, param_sets, progress=False, **backend)


def run_stages(mode, backend, manager, stages, param_sets):
    """``stages`` in order on a record per parameter set, eagerly or with ``map``/``run``."""
    return perform(mode, backend, manager, chain_of(*stages), param_sets, stages)


def chain_of(*stages):
    """The experiment that runs ``stages`` in order on a record per parameter set."""

    def experiment(param_sets, manager):
        for params in param_sets:
            record = Record(manager, params)
            for call_stage in stages:
                record = call_stage(record)

    return experiment


def caused_by(error: BaseException | None, kind: type[BaseException]) -> BaseException | None:
    """``error`` or the first of its causes that is a ``kind``."""
    while error is not None:
        if isinstance(error, kind):
            return error
        error = error.__cause__
    return None


@contextlib.contextmanager
def stage_error(kind: type[BaseException], *words: str):
    """A ``kind`` is raised: directly (eagerly), or as the cause of the StageFailedError that
    ``map``/``run`` raise; its message holds ``words``."""
    with pytest.raises((kind, StageFailedError)) as info:
        yield info
    found = caused_by(info.value, kind)
    assert found is not None, f"{info.value!r} is not (caused by) a {kind.__name__}"
    for word in words:
        assert word in str(found), str(found)


@pytest.fixture
def cache_path(tmp_path) -> Path:
    """The cache directory of the managers ``make_manager`` makes (their root is tmp_path)."""
    return tmp_path / "data" / "cache"


def files_in(cache_dir: Path) -> set[str]:
    return {path.name for path in Path(cache_dir).iterdir()} if Path(cache_dir).is_dir() else set()


# -- SPEC 1: a returned tuple is the outputs ----------------------------------------------------


@EVERY_WAY
def test_one_output_returning_a_tuple_in_a_tuple_stores_the_inner_tuple(
    mode, backend, make_manager
):
    manager = make_manager("test")
    [record] = run_stages(
        mode, backend, manager, [one_output], [Returns(name="r", returns="nested")]
    )
    assert dict(record.state) == {"a": (1, 2)}
    assert type(record.state["a"]) is tuple


@EVERY_WAY
@pytest.mark.parametrize("returns", ["pair", "empty", "point"])
def test_one_output_returning_a_bare_tuple_is_an_error(mode, backend, returns, make_manager):
    manager = make_manager("test")
    with stage_error(StageOutputError, "one_output"):
        run_stages(mode, backend, manager, [one_output], [Returns(name="r", returns=returns)])


@EVERY_WAY
def test_two_outputs_returning_a_list_is_an_error(mode, backend, make_manager):
    manager = make_manager("test")
    with stage_error(StageOutputError, "two_outputs"):
        run_stages(mode, backend, manager, [two_outputs], [Returns(name="r", returns="list")])


@EVERY_WAY
def test_two_outputs_returning_a_tuple_stores_both(mode, backend, make_manager):
    manager = make_manager("test")
    [record] = run_stages(
        mode, backend, manager, [two_outputs], [Returns(name="r", returns="pair")]
    )
    assert dict(record.state) == {"a": 1, "b": 2}
    assert record.output == (1, 2)


def aggregate_on_its_own(aggregate_stage):
    def experiment(param_sets, manager):
        for params in param_sets:
            aggregate_stage(Record(manager, params), [])

    return experiment


@EAGER_OR_RUN
def test_aggregate_returns_follow_the_same_rule(mode, backend, make_manager):
    manager = make_manager("test")
    [one] = perform(
        mode,
        backend,
        manager,
        aggregate_on_its_own(one_output_agg),
        [Returns(name="nested", returns="nested")],
    )
    assert dict(one.state) == {"a": (1, 2)}
    [two] = perform(
        mode,
        backend,
        manager,
        aggregate_on_its_own(two_outputs_agg),
        [Returns(name="pair", returns="pair")],
    )
    assert dict(two.state) == {"a": 1, "b": 2}
    for returns in ("pair", "empty", "point"):
        with stage_error(StageOutputError, "one_output_agg"):
            perform(
                mode,
                backend,
                manager,
                aggregate_on_its_own(one_output_agg),
                [Returns(name=f"one_{returns}", returns=returns)],
            )
    with stage_error(StageOutputError, "two_outputs_agg"):
        perform(
            mode,
            backend,
            manager,
            aggregate_on_its_own(two_outputs_agg),
            [Returns(name="two_list", returns="list")],
        )


# -- SPEC 2: keyword arguments at the call ------------------------------------------------------


def kwarg_wins(param_sets, manager):
    for params in param_sets:
        use_x(make_x(Record(manager, params)), x=15)


@EAGER_OR_RUN
def test_keyword_argument_takes_the_place_of_the_input(mode, backend, make_manager):
    manager = make_manager("test")
    [record] = perform(mode, backend, manager, kwarg_wins, [Params(name="p", m=13)])
    assert dict(record.state) == {"x": 13, "y": 15}


def kwarg_supplies(param_sets, manager):
    for params in param_sets:
        use_x(Record(manager, params), x=7)


@EAGER_OR_RUN
def test_keyword_argument_may_supply_a_missing_input(mode, backend, make_manager):
    manager = make_manager("test")
    [record] = perform(mode, backend, manager, kwarg_supplies, [Params(name="p", m=1)])
    assert dict(record.state) == {"y": 7}


def aggregate_kwarg(param_sets, manager):
    records = [make_x(Record(manager, params)) for params in param_sets]
    agg_x(Record(manager, None), records)
    agg_x(Record(manager, None), records, x={"override": 1})


@EAGER_OR_RUN
def test_aggregate_keyword_named_like_an_input_replaces_its_dict(mode, backend, make_manager):
    manager = make_manager("test")
    records = perform(
        mode, backend, manager, aggregate_kwarg, [Params(name="p1", m=1), Params(name="p2", m=2)]
    )
    plain, overridden = records[2], records[3]
    assert dict(plain.state) == {"seen": {"p1": 1, "p2": 2}}
    assert dict(overridden.state) == {"seen": {"override": 1}}


def cached_kwarg(value):
    def experiment(param_sets, manager):
        for params in param_sets:
            use_x_cached(Record(manager, params), x=value)

    return experiment


@EAGER_OR_RUN
def test_keyword_arguments_are_part_of_the_cached_entrys_provenance(
    mode, backend, make_manager, cache_path
):
    # Deliberate difference from curifactory, which leaves keywords out of the cache key (a
    # second call with x=99 would load the 15 cached by the first): in parafactory the
    # keywords of a call are part of its entry's provenance, so another keyword recomputes.
    first = perform(mode, backend, make_manager("test"), cached_kwarg(15), [Params(name="p")])
    assert dict(first[0].state) == {"y": 15}
    assert executions(cache_path) == ["use_x_cached:p"]
    same = perform(mode, backend, make_manager("test"), cached_kwarg(15), [Params(name="p")])
    assert dict(same[0].state) == {"y": 15}
    assert executions(cache_path) == []  # the same keyword: loaded
    other = perform(mode, backend, make_manager("test"), cached_kwarg(99), [Params(name="p")])
    assert dict(other[0].state) == {"y": 99}
    assert executions(cache_path) == ["use_x_cached:p"]


# -- SPEC 3: suppress_missing_inputs ------------------------------------------------------------


@EVERY_WAY
def test_suppressed_missing_input_takes_the_functions_default(mode, backend, make_manager, caplog):
    caplog.set_level(logging.WARNING)
    manager = make_manager("test")
    stages = [make_a, with_default]
    [record] = run_stages(mode, backend, manager, stages, [Params(name="p")])
    assert dict(record.state) == {"a": 1, "out": [1, "DEFAULT_B"]}
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and "with_default" in r.getMessage()
    ]
    assert any("'b'" in message for message in warnings), warnings


@EVERY_WAY
def test_suppressed_missing_input_without_default_is_an_error(mode, backend, make_manager):
    manager = make_manager("test")
    stages = [make_a, no_default]
    with stage_error(StageInputError, "no_default", "'b'"):
        run_stages(mode, backend, manager, stages, [Params(name="p")])


@EVERY_WAY
def test_missing_input_without_suppress_is_an_error_despite_a_default(mode, backend, make_manager):
    manager = make_manager("test")
    stages = [make_a, default_unsuppressed]
    if mode == "eager":
        with stage_error(StageInputError, "default_unsuppressed", "'b'"):
            run_stages(mode, backend, manager, stages, [Params(name="p")])
    else:  # refused when planning, before any work starts
        with pytest.raises(PlanError, match=r"'default_unsuppressed' needs input 'b'"):
            run_stages(mode, backend, manager, stages, [Params(name="p")])


# -- SPEC 4: cachers=[] -------------------------------------------------------------------------
# curifactory raises at the call (CachersMismatchError / EmptyCachersError); parafactory
# refuses such a stage when it is decorated, so the mistake shows before anything runs.


@pytest.mark.parametrize("decorator", [cf.stage, cf.aggregate])
@pytest.mark.parametrize("outputs", [["a"], [], None])
def test_empty_cachers_are_refused(decorator, outputs):
    with pytest.raises(StageDefinitionError):

        @decorator(None, outputs, cachers=[])
        def empty_cachers(record, records=None):
            return 1


# -- SPEC 5: records without parameters ---------------------------------------------------------


def paramless_stage(param_sets, manager):
    make_v(Record(manager, None))


@EAGER_OR_RUN
def test_regular_stage_without_parameters_never_loads_but_saves(
    mode, backend, make_manager, cache_path
):
    for _ in range(2):
        [record] = perform(mode, backend, make_manager("test"), paramless_stage, [])
        assert dict(record.state) == {"v": 7}
        assert executions(cache_path) == ["make_v:None"]  # it ran again
        assert "test_None_make_v_v.json" in files_in(cache_path)


def aggregate_over(with_records: bool):
    def experiment(param_sets, manager):
        records = [make_v(Record(manager, params)) for params in param_sets]
        total(Record(manager, None), records if with_records else [])

    return experiment


@EAGER_OR_RUN
def test_aggregate_without_parameters_over_records_is_cached(
    mode, backend, make_manager, cache_path
):
    param_sets = [Params(name="p1", m=1), Params(name="p2", m=2)]
    records = perform(mode, backend, make_manager("test"), aggregate_over(True), param_sets)
    assert dict(records[-1].state) == {"total": 3}
    assert executions(cache_path) == ["make_v:p1", "make_v:p2", "total:None"]
    name = f"test_{combo(None, [H1, H2])}_total_total.json"
    assert name == "test_cc52d39ef003287d3d0f8a8308f572be_total_total.json"
    assert name in files_in(cache_path)
    param_sets = [Params(name="p1", m=1), Params(name="p2", m=2)]
    records = perform(mode, backend, make_manager("test"), aggregate_over(True), param_sets)
    assert dict(records[-1].state) == {"total": 3}
    assert executions(cache_path) == []  # the second run loads


@EAGER_OR_RUN
def test_aggregate_without_parameters_over_no_records_never_loads(
    mode, backend, make_manager, cache_path
):
    for _ in range(2):
        [record] = perform(mode, backend, make_manager("test"), aggregate_over(False), [])
        assert dict(record.state) == {"total": 0}
        assert executions(cache_path) == ["total:None"]
        name = f"test_{combo(None, [])}_total_total.json"
        assert name == "test_735bf18ca8aac8737daab735625e6102_total_total.json"
        assert name in files_in(cache_path)


# -- SPEC 6: overwrite on an input record of a parameter-less aggregate ----------------------


def overwrite_experiment(param_sets, manager):
    records = [times_ten(make_v(Record(manager, params))) for params in param_sets]
    after_total(total_w(Record(manager, None), records))


@EAGER_OR_RUN
def test_aggregate_without_parameters_recomputes_when_an_input_overwrites(
    mode, backend, make_manager, cache_path
):

    def sweep(overwrite_p1):
        return [Params(name=f"p{m}", m=m, overwrite=overwrite_p1 and m == 1) for m in (1, 2)]

    perform(mode, backend, make_manager("test"), overwrite_experiment, sweep(False))
    assert len(executions(cache_path)) == 6
    perform(mode, backend, make_manager("test"), overwrite_experiment, sweep(False))
    assert executions(cache_path) == []
    records = perform(mode, backend, make_manager("test"), overwrite_experiment, sweep(True))
    # curifactory: first:p1, second:p1, total:None, after_agg:None (SPEC 6's table)
    assert executions(cache_path) == [
        "after_total:None",
        "make_v:p1",
        "times_ten:p1",
        "total_w:None",
    ]
    assert dict(records[-1].state) == {"total": 30, "after": 31}


def uncached_inputs(param_sets, manager):
    records = [make_v_uncached(Record(manager, params)) for params in param_sets]
    total(Record(manager, None), records)


@EAGER_OR_RUN
def test_overwrite_on_an_input_without_cached_stages_recomputes_the_aggregate(
    mode, backend, make_manager, cache_path
):
    # SPEC 6 (caching.py 489-503): a parameter-less aggregate record misses when any direct
    # input record has params.overwrite, whether or not that record's own stages are cached.

    def sweep(overwrite_p1):
        return [Params(name=f"p{m}", m=m, overwrite=overwrite_p1 and m == 1) for m in (1, 2)]

    perform(mode, backend, make_manager("test"), uncached_inputs, sweep(False))
    assert executions(cache_path) == ["make_v_uncached:p1", "make_v_uncached:p2", "total:None"]
    perform(mode, backend, make_manager("test"), uncached_inputs, sweep(False))
    assert executions(cache_path) == ["make_v_uncached:p1", "make_v_uncached:p2"]
    records = perform(mode, backend, make_manager("test"), uncached_inputs, sweep(True))
    assert executions(cache_path) == ["make_v_uncached:p1", "make_v_uncached:p2", "total:None"]
    assert dict(records[-1].state) == {"total": 3}


# -- SPEC 7: combo hashes of nested aggregates --------------------------------------------------


def nested_experiment(param_sets, manager):
    p1, p2, p3 = (make_v(Record(manager, params)) for params in param_sets)
    inner_none = inner(Record(manager, None), [p1, p2])
    outer(Record(manager, None), [inner_none, p3])
    inner_with_params = inner(Record(manager, Params(name="agg", m=0)), [p1, p2])
    outer(Record(manager, None), [inner_with_params, p3])


@EAGER_OR_RUN
def test_nested_aggregates_use_members_parameter_hashes(mode, backend, make_manager, cache_path):
    manager = make_manager("test")
    param_sets = [Params(name=f"p{m}", m=m) for m in (1, 2, 3)]
    records = perform(mode, backend, manager, nested_experiment, param_sets)
    inner_none, outer_none, inner_agg, outer_agg = records[3:]
    inner_hash = combo(None, [H1, H2])
    outer_hash = combo(None, [None, H3])  # the inner record adds "None", not its combo hash
    assert inner_hash == "cc52d39ef003287d3d0f8a8308f572be"
    assert outer_hash == "7e61eb1a4ec815027713b3cff751f644"
    h_agg = params_hash(("m", "0"))
    inner_agg_hash = combo(h_agg, [H1, H2])
    outer_agg_hash = combo(None, [h_agg, H3])  # the inner record adds its params hash
    assert (h_agg, inner_agg_hash, outer_agg_hash) == (
        "ced6bfe1f650f6b338594d37eb7850d2",
        "44a8c7d6d407a96953b3d1e935e80073",
        "9a753b87a8726d107b096da3b7ca5d5e",
    )
    files = files_in(cache_path)
    for name in (
        f"test_{inner_hash}_inner_inner_total.json",
        f"test_{outer_hash}_outer_outer_total.json",
        f"test_{inner_agg_hash}_inner_inner_total.json",
        f"test_{outer_agg_hash}_outer_outer_total.json",
    ):
        assert name in files, sorted(files)
    assert (inner_none.get_hash(), outer_none.get_hash()) == (inner_hash, outer_hash)
    assert (inner_agg.get_hash(), outer_agg.get_hash()) == (inner_agg_hash, outer_agg_hash)
    assert dict(inner_none.state) == {"inner_total": 3}
    assert dict(outer_none.state) == {"outer_total": 6}
    assert dict(outer_agg.state) == {"outer_total": 6}


# -- SPEC 8: parameter hashing ------------------------------------------------------------------


def test_dataclass_class_as_a_value_hashes_by_its_class_defaults():
    expected = params_hash(("layers", "3"), ("lr", "0.1"), ("seed", "0"))
    assert expected == "1d584a8e8b0a4714434185c3795f9aca7"
    assert ModelParams().params_hash() == expected
    assert ModelParams(model_type=MyModelClass()).params_hash() == expected


def test_set_hash_functions_as_a_field_default():
    expected = params_hash(("a", "1"))
    assert expected == "8a8bb7cd343aa2ad99b7d762030857a2"
    params = NoneParams()
    assert params.params_hash() == expected
    assert NoneParams(seed=1, workers=2).params_hash() == expected
    assert params.hash_representations is not NoneParams().hash_representations


def test_params_hash_does_not_set_hash_and_dry_gives_the_strategies():
    @dataclasses.dataclass
    class MyParams(cf.ExperimentParameters):
        some_scalar_multiplier: float = 1.0

    params = MyParams(name="default", some_scalar_multiplier=1.0)
    assert params.params_hash() == "fbfbde1db878403f89d2b0b9cdf4fbbd"
    assert params.hash is None
    assert MyParams(hash="manual_hash").params_hash() == "manual_hash"
    skipped = ("SKIPPED: blacklist", None)
    blacklist = {name: skipped for name in ("name", "hash", "overwrite", "hash_representations")}
    assert params.params_hash(dry=True) == {
        **blacklist,
        "some_scalar_multiplier": ("repr(some_scalar_multiplier)", "1.0"),
    }
    assert ModelParams().params_hash(dry=True) == {
        **blacklist,
        "model_type": (
            "get_param_set_hash_values(param_set, model_type)",
            {"layers": ("repr(layers)", "3"), "lr": ("repr(lr)", "0.1")},
        ),
        "seed": ("repr(seed)", "0"),
    }
    assert NoneParams().params_hash(dry=True) == {
        **blacklist,
        "a": ("repr(a)", "1"),
        "b": ("SKIPPED: value is None", None),
        "seed": ("SKIPPED: set to None in hash_representations", None),
        "workers": ("param_set.hash_representations['workers'](param_set, workers)", None),
    }


@EVERY_WAY
def test_curifactory_hashes_name_the_cache_files(mode, backend, make_manager):
    manager = make_manager("test")
    param_sets = [ModelParams(name="model"), NoneParams(name="nones")]
    records = perform(mode, backend, manager, chain_of(seen_hash), param_sets, [seen_hash])
    expected = ["1d584a8e8b0a4714434185c3795f9aca7", "8a8bb7cd343aa2ad99b7d762030857a2"]
    assert [record.state["seen_hash"] for record in records] == expected
    for hash_ in expected:
        assert f"test_{hash_}_seen_hash_seen_hash.json" in files_in(manager.cache_dir)


# -- SPEC 9: make_copy --------------------------------------------------------------------------


def test_make_copy_eagerly(make_manager):
    manager = make_manager("test")
    params = Params(name="orig", m=2)
    original = make_list(Record(manager, params))
    copied = original.make_copy()
    assert manager.records[-1] is copied
    assert copied.params is params and copied.get_hash() == H2
    assert dict(copied.state) == {"lst": [1, [2, 3]]}
    assert copied.state is not original.state
    assert copied.state["lst"][1] is not original.state["lst"][1]  # a deep copy
    assert copied.input_records == [original]
    assert copied.stages == []
    hidden = original.make_copy(Params(name="new", m=3), add_to_manager=False)
    assert hidden.params.hash == H3
    assert hidden not in manager.records
    assert hidden.input_records == [original]


def copying(hidden_copies):
    """make_list, then a copy, a hidden copy with other parameters, and stages on each."""

    def experiment(param_sets, manager):
        for params in param_sets:
            original = make_list(Record(manager, params))
            copied = original.make_copy()
            hidden = original.make_copy(Params(name="hidden", m=3), add_to_manager=False)
            hidden_copies.append(hidden)
            append_orig(original)
            look(copied)
            look(hidden)
            look(original)

    return experiment


@EAGER_OR_RUN
def test_make_copy_in_an_experiment(mode, backend, make_manager):
    manager = make_manager("test")
    hidden_copies = []
    experiment = copying(hidden_copies)
    records = perform(mode, backend, manager, experiment, [Params(name="orig", m=2)])
    original, copied = records  # the hidden copy is not among the manager's records
    [hidden] = hidden_copies
    assert hidden not in manager.records and hidden.params.hash == H3
    assert dict(hidden.state) == {"lst": [1, [2, 3]], "seen": [1, [2, 3]]}
    assert copied.params is original.params
    assert copied.input_records == [original]
    assert dict(copied.state) == {"lst": [1, [2, 3]], "seen": [1, [2, 3]]}
    assert dict(original.state) == {
        "lst": [1, [2, 3, "orig"]],
        "seen": [1, [2, 3, "orig"]],
    }
    assert copied.stages == ["look"]
    assert original.stages == ["make_list", "append_orig", "look"]


# -- SPEC 10: get_path / get_dir ----------------------------------------------------------------


def where_and_aggregate(param_sets, manager):
    records = [where(Record(manager, params)) for params in param_sets]
    agg_where(Record(manager, None), records)


@EVERY_WAY
def test_get_path_and_get_dir_inside_a_stage(mode, backend, make_manager, tmp_path):
    manager = make_manager("test")  # its root is tmp_path
    cache = str(tmp_path / "data" / "cache")
    assert manager.cache_path == cache
    stages = [where]
    experiment = chain_of(where) if mode == "map" else where_and_aggregate
    records = perform(mode, backend, manager, experiment, [Params(name="p", m=2)], stages)
    paths = records[0].state["paths"]
    assert paths["path"] == f"{cache}/test_{H2}_where_thing.txt"
    assert paths["written"] and os.path.isfile(paths["path"])
    assert paths["sub"] == f"{cache}/a/b/pre_{H2}_where_thing"
    assert paths["other"] == f"{cache}/test_{H2}_other_thing"
    assert paths["dir"] == f"{cache}/test_{H2}_where_mydir"
    assert paths["dir_made"] and os.path.isdir(paths["dir"])
    assert paths["types"] == ["str"]
    assert paths["cache_path"] == cache  # record.manager.cache_path, in the worker too
    if mode != "eager" and backend.get("n_jobs") != 1:
        assert paths["pid"] != os.getpid()  # it ran in a worker
    if mode != "map":
        assert records[1].state["agg_path"] == f"{cache}/test_{combo(None, [H2])}_agg_where_thing"


@EVERY_WAY
def test_get_path_in_a_dry_run_writes_nothing_under_the_project(
    mode, backend, make_manager, tmp_path
):
    manager = make_manager("test", dry=True)
    stages = [where]
    records = perform(mode, backend, manager, chain_of(where), [Params(name="p", m=2)], stages)
    paths = records[0].state["paths"]
    assert paths["written"] and paths["dir_made"]
    assert Path(paths["path"]).name == f"test_{H2}_where_thing.txt"
    assert Path(paths["dir"]).name == f"test_{H2}_where_mydir"
    assert not paths["path"].startswith(str(tmp_path))
    assert paths["path"].startswith(tempfile.gettempdir())  # a temporary directory
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_get_path_is_relative_when_the_cache_dir_is(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    manager = cf.ArtifactManager("test", console_log=False)
    try:
        eager = where(Record(manager, Params(name="p", m=2))).state["paths"]
        [mapped] = manager.map([Params(name="q", m=3)], [where], n_jobs=1, progress=False)
    finally:
        manager.close()
    assert eager["path"] == f"data/cache/test_{H2}_where_thing.txt"
    assert eager["sub"] == f"data/cache/a/b/pre_{H2}_where_thing"
    assert eager["dir"] == f"data/cache/test_{H2}_where_mydir"
    assert eager["cache_path"] == "data/cache"
    assert mapped.state["paths"]["path"] == f"data/cache/test_{H3}_where_thing.txt"
    assert (tmp_path / "data" / "cache" / f"test_{H3}_where_thing.txt").is_file()


RELATIVE_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    sys.path.insert(0, {tests!r})
    import parafactory as cf
    from compat_stages import Params, where

    first, second = sys.argv[1], sys.argv[2]
    os.chdir(first)  # the pool's workers start here...
    warm = cf.ArtifactManager("warm", console_log=False)
    warm.map([Params(name="w", m=9)], [where], n_jobs=2, progress=False)
    os.chdir(second)  # ...then the user moves on, as in a notebook, and runs a sweep
    manager = cf.ArtifactManager("test", console_log=False)
    records = manager.map(
        [Params(name="p", m=2), Params(name="q", m=3)], [where], n_jobs=2, progress=False
    )
    print(json.dumps([record.state["paths"]["path"] for record in records]))
    """
)


def test_relative_cache_dir_in_workers_follows_the_parents_working_directory(tmp_path):
    """A relative cache dir (the default, root=".") means the parent's working directory
    in loky workers too, also when the parent changed it after the pool started: stage
    files and cache entries go where curifactory, running in the parent, would put them."""
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    script = tmp_path / "relative.py"
    script.write_text(RELATIVE_SCRIPT.format(tests=str(TESTS)))
    completed = subprocess.run(
        [sys.executable, str(script), str(first), str(second)],
        cwd=first,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert completed.returncode == 0, completed.stderr
    paths = completed.stdout.strip().splitlines()[-1]
    assert (
        paths == f'["data/cache/test_{H2}_where_thing.txt", "data/cache/test_{H3}_where_thing.txt"]'
    )
    misplaced = sorted(path.name for path in (first / "data" / "cache").glob("test_*"))
    assert misplaced == [], f"workers wrote {misplaced} where the pool started, not in the cwd"
    cache = second / "data" / "cache"
    for hash_ in (H2, H3):
        assert (cache / f"test_{hash_}_where_thing.txt").is_file(), sorted(files_in(cache))
