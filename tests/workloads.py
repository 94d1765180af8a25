"""Parameter classes, stages, aggregates and experiments for the parallel-execution tests.

Everything is module-level so loky and dask worker processes can import it
(pytest puts tests/ on sys.path and the workers inherit it). Aggregates put
record *names* in their outputs, never Record objects, so states compare
across managers.
"""

import dataclasses
import os
import time
from pathlib import Path

from parafactory import ExperimentParameters, PickleCacher, Record, aggregate, stage

# -- the seed notebook's example ---------------------------------------------------------


@dataclasses.dataclass
class MyParams(ExperimentParameters):
    some_scalar_multiplier: float = 1.0


@stage(inputs=None, outputs=["initial_value"])
def get_initial_value(record):
    my_value = 5
    return my_value * record.params.some_scalar_multiplier


@stage(inputs=["initial_value"], outputs=["final_value"])
def multiply_again(record, initial_value):
    return initial_value * record.params.some_scalar_multiplier


@aggregate(inputs=["final_value"], outputs=["all_final_values", "maximum_value"])
def find_maximum_final_value(record, records, final_value):
    all_vals = {}
    for r, value in final_value.items():
        all_vals[r.params.name] = value
    maximum = max(all_vals.values())
    return all_vals, maximum


def seed_params():
    return [
        MyParams(name="default"),
        MyParams(name="doubled", some_scalar_multiplier=2.0),
        MyParams(name="uber-double", some_scalar_multiplier=4.0),
    ]


def seed_experiment(param_sets, manager):
    """The notebook's calls: r0 gets only the first stage; the aggregate takes every record."""
    r0, r1, r2 = (Record(manager, params) for params in param_sets)
    get_initial_value(r0)
    get_initial_value(r1)
    multiply_again(r1)
    multiply_again(get_initial_value(r2))
    find_maximum_final_value(Record(manager, None))


# -- generic parameters and stages --------------------------------------------------------


@dataclasses.dataclass
class Params(ExperimentParameters):
    value: int = 0
    group: str = ""
    sleep: float = 0.0
    fail: bool = False
    marker: str = ""


def numbered_params(count, **fields):
    return [Params(name=f"p{i:03d}", value=i, **fields) for i in range(count)]


@stage(inputs=None, outputs=["base"])
def make_base(record):
    return record.params.value * 3 + 1


@stage(inputs=["base"], outputs=["multiples", "label"])
def expand(record, base):
    return [base * k for k in range(5)], f"{record.params.name}:{base}"


@stage(inputs=["multiples", "label"], outputs=["summary"])
def summarize(record, multiples, label):
    return {"label": label, "total": sum(multiples), "largest": max(multiples)}


@stage(inputs=["base"], outputs=["base"])
def bump_base(record, base):
    """Overwrites an earlier output: an aggregate planned before it must not see the new value."""
    return base + 1000


@aggregate(inputs=["summary"], outputs=["members", "totals", "grand_total"])
def total_summaries(record, records, summary):
    totals = {r.name: s["total"] for r, s in summary.items()}
    return [r.name for r in records], totals, sum(totals.values())


@stage(inputs=["grand_total"], outputs=["scaled_total"])
def scale_total(record, grand_total, factor=1):
    return grand_total * factor


@stage(inputs=["scaled_total", "members"], outputs=["per_member"])
def per_member(record, scaled_total, members):
    return scaled_total / len(members)


@aggregate(inputs=["scaled_total", "per_member"], outputs=["overall"])
def combine_totals(record, records, scaled_total, per_member):
    return {
        "scaled": {r.name: value for r, value in scaled_total.items()},
        "per_member": {r.name: value for r, value in per_member.items()},
        "sum": sum(scaled_total.values()),
    }


@aggregate(inputs=["base"], outputs=["seen_keys", "base_sum"])
def snapshot_keys(record, records, base):
    """Records what each input record's state held when the aggregate ran."""
    return {r.name: sorted(r.state) for r in records}, sum(base.values())


def three_stage_experiment(param_sets, manager):
    for params in param_sets:
        summarize(expand(make_base(Record(manager, params))))


def nested_aggregates_experiment(param_sets, manager):
    """chains -> aggregate per group -> stages on each aggregate's record -> aggregate of those."""
    groups = {}
    for params in param_sets:
        record = summarize(expand(make_base(Record(manager, params))))
        groups.setdefault(params.group, []).append(record)
    group_records = []
    for position, (name, members) in enumerate(sorted(groups.items())):
        # One aggregate record with parameters of its own, the others without.
        own = Params(name=f"total-{name}", value=position) if position == 0 else None
        group_record = Record(manager, own)
        if own is not None:
            make_base(group_record)  # a regular stage before the aggregate, on its record
        total_summaries(group_record, members)
        per_member(scale_total(group_record, factor=position + 2))
        group_records.append(group_record)
    combine_totals(Record(manager, None), group_records)


def overlapping_aggregates_experiment(param_sets, manager):
    records = [summarize(expand(make_base(Record(manager, p)))) for p in param_sets]
    total_summaries(Record(manager, None), records[:4])
    total_summaries(Record(manager, None), records[2:])
    total_summaries(Record(manager, None), records[1::2])


def early_aggregate_experiment(param_sets, manager):
    """Aggregates planned between a record's stages see only the stages planned before them."""
    records = [make_base(Record(manager, p)) for p in param_sets]
    records.append(Record(manager, Params(name="idle")))  # never gets a stage
    snapshot_keys(Record(manager, None), records)
    for record in records[:-1:2]:
        expand(record)
    snapshot_keys(Record(manager, None), records)
    for record in records[:-1]:
        bump_base(record)
    snapshot_keys(Record(manager, None), records)
    for record in records[:-1:2]:
        summarize(record)


def repeated_members_experiment(param_sets, manager):
    """An aggregate whose group names a record twice and includes the aggregate's own record."""
    records = [make_base(Record(manager, p)) for p in param_sets]
    own = make_base(Record(manager, Params(name="own", value=100)))
    snapshot_keys(own, [records[0], own, records[0], *records[1:]])
    for record in [records[0], own, records[1]]:
        expand(record)
    snapshot_keys(Record(manager, None), [own, own, *records])


# -- in-place mutation of an input after an aggregate ---------------------------------------


@stage(inputs=None, outputs=["history"])
def start_history(record):
    return [record.params.value]


@aggregate(inputs=["history"], outputs=["history_lengths"])
def history_lengths(record, records, history):
    return {r.name: len(h) for r, h in history.items()}


@stage(inputs=["history"], outputs=["history_size"])
def extend_history(record, history):
    """Mutates its input in place, as ``model.fit(...)`` on a model from an earlier stage would."""
    history.append(record.params.value * 10)
    return len(history)


def in_place_mutation_experiment(param_sets, manager):
    records = [start_history(Record(manager, p)) for p in param_sets]
    history_lengths(Record(manager, None), records)
    for record in records:
        extend_history(record)


# -- streaming --------------------------------------------------------------------------


@stage(inputs=None, outputs=["finished_at"])
def sleep_then_stamp(record):
    time.sleep(record.params.sleep)
    return time.time()


@aggregate(inputs=["finished_at"], outputs=["aggregated_at", "members"])
def stamp_group(record, records, finished_at):
    return time.time(), sorted(r.name for r in finished_at)


def streaming_experiment(param_sets, manager):
    """One aggregate per group, each over an explicit list of that group's records."""
    groups = {}
    for params in param_sets:
        groups.setdefault(params.group, []).append(sleep_then_stamp(Record(manager, params)))
    for name, members in groups.items():
        stamp_group(Record(manager, Params(name=f"{name}-aggregate")), members)


# -- failures ---------------------------------------------------------------------------


class WorkloadError(ValueError):
    """The exception the failing stage raises; its type must survive the trip back."""


@stage(inputs=None, outputs=["slept"])
def fail_or_sleep(record):
    if record.params.fail:
        raise WorkloadError(f"boom on purpose in {record.params.name}")
    time.sleep(record.params.sleep)
    return record.params.value


@stage(inputs=["slept"], outputs=["refined"])
def refine(record, slept):
    if record.params.group == "fail-in-refine":
        raise WorkloadError(f"refine refused {record.params.name}")
    return slept * 10


@aggregate(inputs=["refined"], outputs=["refined_by_name"])
def collect_refined(record, records, refined):
    return {r.name: value for r, value in refined.items()}


@stage(inputs=["refined"], outputs=["after"])
def after_aggregate(record, refined):
    return refined + 1


def failing_experiment(param_sets, manager):
    """chain (fail_or_sleep, refine) -> aggregate over all -> after_aggregate on each record."""
    records = [refine(fail_or_sleep(Record(manager, p))) for p in param_sets]
    collect_refined(Record(manager, None))
    for record in records:
        after_aggregate(record)


# Cached, for failures on a first run and on its cached rerun: "bad" records fail in
# keep_or_fail, those of group "fail-in-double" in keep_double (holding "kept").


@stage(inputs=None, outputs=["kept"], cachers=[PickleCacher()])
def keep_or_fail(record):
    if record.params.fail:
        raise WorkloadError(f"boom on purpose in {record.params.name}")
    return record.params.value


@stage(inputs=["kept"], outputs=["doubled"], cachers=[PickleCacher()])
def keep_double(record, kept):
    if record.params.group == "fail-in-double":
        raise WorkloadError(f"keep_double refused {record.params.name}")
    return 2 * kept


@aggregate(inputs=["kept"], outputs=["kept_by_name"], cachers=[PickleCacher()])
def collect_kept(record, records, kept):
    return {r.name: value for r, value in kept.items()}


@stage(inputs=["kept_by_name"], outputs=["kept_count"], cachers=[PickleCacher()])
def count_kept(record, kept_by_name):
    return len(kept_by_name)


def copying_experiment(param_sets, manager):
    """Each record's copy (named ``{name}-copy``) doubles what its original kept."""
    for params in param_sets:
        original = keep_or_fail(Record(manager, params))
        keep_double(original.make_copy(dataclasses.replace(params, name=f"{params.name}-copy")))


def failed_groups_experiment(param_sets, manager):
    """Aggregates (each counted after) over the records that failed in keep_or_fail
    ("over failed"), over those that failed in keep_double ("over half"), and over all."""
    records = [keep_double(keep_or_fail(Record(manager, p))) for p in param_sets]
    failed = [r for r, p in zip(records, param_sets, strict=True) if p.fail]
    half = [r for r, p in zip(records, param_sets, strict=True) if p.group == "fail-in-double"]
    for name, group in [("failed", failed), ("half", half), ("all", records)]:
        count_kept(collect_kept(Record(manager, Params(name=f"over {name}")), group))


# -- planning ---------------------------------------------------------------------------


@stage(inputs=None, outputs=["marked"])
def touch_marker(record):
    """Proves a stage ran: writes the file named by the record's parameters."""
    Path(record.params.marker).write_text(record.params.name)
    return True


@stage(inputs=None, outputs=["scaled", "pid"])
def scale_with(record, factor=1, offset=0):
    return record.params.value * factor + offset, os.getpid()


@stage(inputs=["offset"], outputs=["shifted"])
def use_offset(record, offset):
    return record.params.value + offset


@stage(inputs=None, outputs=["seen"])
def echo_arguments(record, *args, **kwargs):
    """What the call passed, with each value's type: calls sharing arguments must not mix
    ``1``, ``1.0`` and ``True``."""
    return [(type(value).__name__, value) for value in (*args, *kwargs.values())]
