"""Failures are per record: errors="raise" stops and explains, errors="continue" carries on."""

import json
import logging

import pytest

import workloads as w
from parafactory import ArtifactManager, Record, StageFailedError, UpstreamFailedError


def test_raise_stops_dispatching_and_names_record_stage_and_cause(manager, backend):
    params = [w.Params(name=f"r{i:02d}", value=i, fail=(i == 0), sleep=0.1) for i in range(30)]
    with pytest.raises(StageFailedError) as excinfo:
        manager.map(params, [w.fail_or_sleep], errors="raise", progress=False, **backend)

    error = excinfo.value
    message = str(error)
    for part in ["'r00'", "'fail_or_sleep'", "WorkloadError", "boom on purpose in r00"]:
        assert part in message
    assert (error.record_name, error.stage_name) == ("r00", "fail_or_sleep")
    cause = error.__cause__
    assert type(cause) is w.WorkloadError
    assert str(cause) == "boom on purpose in r00"
    # The worker's traceback travels as the original exception's own cause: whole in its
    # text; shown, it stops before the exception's line (printed next, as its effect).
    assert "fail_or_sleep" in str(cause.__cause__)
    assert "boom on purpose in r00" in cause.__cause__.text
    assert "boom on purpose in r00" not in str(cause.__cause__)

    records = manager.records
    assert len(records) == 30
    assert records[0].state == {} and records[0].stages == []
    assert records[0].error is not None and "r00" in str(records[0].error)
    finished = [r for r in records[1:] if r.state]
    never_ran = [r for r in records[1:] if not r.state]
    # Finished records keep their state; dispatching stopped, so the sweep did not complete.
    if backend == {"n_jobs": 1}:
        assert finished == [], "in-process, no record may start after the failing one"
    else:
        assert finished, "records in flight when the failure arrived should have finished"
    assert never_ran, "dispatching should stop after the failure"
    for record in finished:
        assert record.state == {"slept": record.params.value}
        assert record.stages == ["fail_or_sleep"]
        assert record.error is None
    assert all(r.stages == [] and r.error is None for r in never_ran)


def _eager_warning(tmp_path, caplog):
    """The warning eager mode logs when an aggregate's input lacks 'refined' on record 'bad'."""
    eager = ArtifactManager("eager", root=tmp_path, dry=True, console_log=False)
    good = w.refine(w.fail_or_sleep(Record(eager, w.Params(name="good", value=1))))
    bad = Record(eager, w.Params(name="bad", fail=True))
    with caplog.at_level(logging.WARNING, logger="parafactory"):
        w.collect_refined(Record(eager, None), [good, bad])
    eager.close()
    messages = [r.getMessage() for r in caplog.records if "'bad'" in r.getMessage()]
    caplog.clear()
    assert len(messages) == 1
    return messages[0]


def test_continue_marks_the_record_skips_its_dependants_and_summarises(
    manager, backend, tmp_path, caplog, capsys
):
    eager_warning = _eager_warning(tmp_path, caplog)
    params = [
        w.Params(name="bad" if i == 2 else f"r{i}", value=i, fail=(i == 2), sleep=0.05)
        for i in range(6)
    ]
    with caplog.at_level(logging.WARNING):
        records = manager.run(
            w.failing_experiment, params, errors="continue", progress=True, **backend
        )

    assert len(records) == 7
    bad, aggregate_record = records[2], records[6]
    assert isinstance(bad.error, StageFailedError)
    assert type(bad.error.__cause__) is w.WorkloadError
    assert bad.error.stage_name == "fail_or_sleep"
    # Everything on the failed record after the failing stage is skipped.
    assert bad.state == {} and bad.stages == []
    for record in records[:2] + records[3:6]:
        v = record.params.value
        assert record.error is None
        assert record.stages == ["fail_or_sleep", "refine", "after_aggregate"]
        assert record.state == {"slept": v, "refined": 10 * v, "after": 10 * v + 1}

    # The aggregate ran over the records that have its input, with eager mode's warning.
    assert aggregate_record.error is None
    assert aggregate_record.stages == ["collect_refined"]
    assert aggregate_record.state == {"refined_by_name": {f"r{i}": 10 * i for i in [0, 1, 3, 4, 5]}}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(message.endswith(eager_warning) for message in warnings), warnings

    summary = "6 of 7 records finished, 1 failed:\n  'bad': WorkloadError in stage 'fail_or_sleep'"
    assert summary in warnings
    # The progress display closed with the counts (plain text: stderr is no terminal).
    assert f"{manager.name}: 7/7 records done, 1 failed [" in capsys.readouterr().err


def test_failure_in_a_later_stage_keeps_what_earlier_stages_computed(manager, backend):
    params = [w.Params(name="ok", value=1), w.Params(name="half", value=2, group="fail-in-refine")]
    records = manager.map(
        params, [w.fail_or_sleep, w.refine], errors="continue", progress=False, **backend
    )
    ok, half = records
    assert ok.state == {"slept": 1, "refined": 10} and ok.error is None
    assert half.state == {"slept": 2}
    assert half.stages == ["fail_or_sleep"]
    assert half.error.stage_name == "refine"
    assert "refine refused half" in str(half.error)


def test_failure_inside_a_batch_of_short_records_fails_only_that_record(manager, backend):
    """Short chains travel several per task; a failure must still stay with its own record."""
    params = [w.Params(name=f"q{i:03d}", value=i, fail=(i == 150)) for i in range(300)]
    records = manager.map(params, [w.fail_or_sleep], errors="continue", progress=False, **backend)
    failed = [r.name for r in records if r.error is not None]
    assert failed == ["q150"]
    assert [r.state.get("slept") for r in records] == [i if i != 150 else None for i in range(300)]


def report_outcomes(manager):
    """How many records the run's report shows computed, cached, failed and skipped."""
    return json.loads((manager.reports_dir / manager.reference / "run.json").read_text())[
        "outcomes"
    ]


@pytest.mark.parametrize("run", ["first", "cached rerun"])
def test_a_copy_of_a_failed_record_is_not_run_nor_counted_finished(
    make_manager, backend, run, capsys
):
    params = [w.Params(name="ok", value=1), w.Params(name="bad", fail=True)]
    if run == "cached rerun":
        make_manager("copies").run(w.copying_experiment, params, errors="continue", **backend)
    capsys.readouterr()
    manager = make_manager("copies")
    records = manager.run(w.copying_experiment, params, errors="continue", progress=True, **backend)

    ok, ok_copy, bad, bad_copy = records
    assert ok.error is None and ok_copy.error is None and ok_copy.state["doubled"] == 2
    assert type(bad.error) is StageFailedError
    assert type(bad_copy.error) is UpstreamFailedError
    assert "record 'bad-copy' was not run: record 'bad', whose results" in str(bad_copy.error)
    assert bad_copy.state == {} and bad_copy.stages == []
    cached = " (2 loaded from cache)" if run == "cached rerun" else ""
    assert manager.run_summary == (
        f"2 of 4 records finished{cached}, 1 failed, 1 not run:\n"
        "  'bad': WorkloadError in stage 'keep_or_fail'\n"
        "  'bad-copy': not run, as records it needs failed"
    )
    done = {"computed": 0, "cached": 2} if cached else {"computed": 2, "cached": 0}
    assert report_outcomes(manager) == {**done, "failed": 1, "skipped": 1}
    # The progress display closed with the same counts (plain text: stderr is no terminal).
    loaded = ", 2 loaded from cache" if cached else ""
    assert f"copies: 4/4 records done{loaded}, 1 failed, 1 not run [" in capsys.readouterr().err


@pytest.mark.parametrize("run", ["first", "cached rerun"])
def test_an_aggregate_over_only_failed_records_lacking_its_inputs_is_not_run(
    make_manager, backend, run, caplog
):
    """Left with nothing to aggregate but failures, an aggregate is not run (nor what needs
    it); over failed records that hold its inputs, or some that did not fail, it runs."""
    params = [
        w.Params(name="good", value=1),
        w.Params(name="bad", fail=True),
        w.Params(name="half", value=3, group="fail-in-double"),
    ]
    if run == "cached rerun":
        make_manager("groups").run(w.failed_groups_experiment, params, errors="continue", **backend)
    manager = make_manager("groups")
    with caplog.at_level(logging.WARNING):
        records = manager.run(
            w.failed_groups_experiment, params, errors="continue", progress=False, **backend
        )

    good, bad, half, over_failed, over_half, over_all = records
    assert good.error is None
    assert bad.error.stage_name == "keep_or_fail" and half.error.stage_name == "keep_double"
    assert type(over_failed.error) is UpstreamFailedError
    assert over_failed.error.stage_name == "collect_kept"
    message = (
        "aggregate 'collect_kept' was not run on record 'over failed': every record it aggregates "
        "failed ('bad'), so none holds its inputs ['kept']"
    )
    assert message in str(over_failed.error)
    assert over_failed.state == {} and over_failed.stages == []
    assert any(message in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert over_half.error is None
    assert dict(over_half.state) == {"kept_by_name": {"half": 3}, "kept_count": 1}
    assert over_all.error is None
    assert dict(over_all.state) == {"kept_by_name": {"good": 1, "half": 3}, "kept_count": 2}
    cached = " (3 loaded from cache)" if run == "cached rerun" else ""
    assert manager.run_summary == (
        f"3 of 6 records finished{cached}, 2 failed, 1 not run:\n"
        "  'bad': WorkloadError in stage 'keep_or_fail'\n"
        "  'half': WorkloadError in stage 'keep_double'\n"
        "  'over failed': not run, as records it needs failed"
    )
    done = {"computed": 0, "cached": 3} if cached else {"computed": 3, "cached": 0}
    assert report_outcomes(manager) == {**done, "failed": 2, "skipped": 1}
