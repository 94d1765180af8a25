"""A cached chain ``make_data -> fit -> score``, an aggregate over it and a lazy stage, for the
provenance tests; importable by worker processes (loky and dask workers import it by name).

Every execution leaves one marker file ``{stage}__{label}__{uuid}`` in the parameter
set's ``marker_dir`` (see ``cache_stages.mark``), so executions count in any process. An
aggregate's label is the names of the records it read, joined with ``+``.
"""

from __future__ import annotations

from cache_stages import Sweep, mark, mark_in, sweep
from parafactory import Lazy, PickleCacher, aggregate, stage

__all__ = ["Sweep", "best", "fit", "make_data", "score", "sweep", "train_lazy"]


@stage(outputs=["data"], cachers=[PickleCacher()])
def make_data(record):
    mark(record, "make_data")
    return [record.params.value, record.params.value + 1]


@stage(inputs=["data"], outputs=["model"], cachers=[PickleCacher()])
def fit(record, data):
    mark(record, "fit")
    return {"slope": sum(data)}


@stage(inputs=["model"], outputs=["score"], cachers=[PickleCacher()])
def score(record, model):
    mark(record, "score")
    return model["slope"] * 10


@aggregate(inputs=["score"], outputs=["best"], cachers=[PickleCacher()])
def best(record, records, score):
    members = list(records)
    label = "+".join(sorted(member.name for member in members))
    mark_in(members[0].params.marker_dir, "best", label)
    return max(score.values())


@stage(outputs=[Lazy("weights")], cachers=[PickleCacher()])
def train_lazy(record):
    mark(record, "train_lazy")
    return [record.params.value] * 4
