"""What a run would do, before it runs: for each record's stages, loaded or computed, and why.

The planner's steps are walked in their order (a step only waits on earlier ones) and
each call is put to the cache as the run would put it (:func:`foresee`): a stage that
would compute passes on the provenance its outputs would have, so what reads it is
foreseen as stale or not, exactly as the run will find it. Nothing is loaded or run.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator
from typing import NamedTuple

from .._core.plan import Plan
from .._model.cache import Cache, Hit, Miss, Provenance
from .._model.records import Record, copy_provenance
from .._model.stages import foresee

CACHED = "cached"
NOT_CACHED = "not cached"  # a stage without cachers (or a dry run): it always computes


class Outlook(NamedTuple):
    """One stage call of a record: loaded from the cache, or computed and why."""

    stage: str
    verdict: str  # CACHED, or why it computes: a MissKind or NOT_CACHED


def foresee_plan(plan: Plan, cache: Cache | None) -> dict[Record, list[Outlook]]:
    """Each record of ``plan`` (hidden ones too, in the order they were made) with what
    each of its stage calls would do.

    A plain stage call on a record the cache holds nothing for is decided without the
    disk, by the call, the provenance it starts from and the record's overwrite flags
    alone: it is foreseen once for each distinct start, and shared (a new sweep of
    100,000 records has a handful)."""
    outlooks: dict[Record, list[Outlook]] = {}
    shared: dict[tuple[object, ...], tuple[Provenance, Outlook]] = {}
    for step in plan.steps:
        record = step.record
        calls = outlooks.get(record)
        if calls is None:
            calls = outlooks[record] = []
        if step.copy_of is not None:
            copy_provenance(step.copy_of, record)
        flags = _flags_unless_held(record, cache)
        for call in step.calls:
            key = None
            if flags is not None and not (call.spec.is_aggregate or call.args or call.kwargs):
                key = (id(call), record._provenance, flags)
                known = shared.get(key)
                if known is not None:
                    record._provenance, outlook = known
                    calls.append(outlook)
                    continue
            found = foresee(call.spec, record, call.group, call.args, call.kwargs, cache)
            outlook = Outlook(call.spec.name, _verdict(found))
            if key is not None:
                shared[key] = (record._provenance, outlook)
            calls.append(outlook)
    return outlooks


def _flags_unless_held(record: Record, cache: Cache | None) -> tuple[bool, bool] | None:
    """What a lookup for ``record`` decides by, when the cache holds nothing of it (else
    ``None``: its entries must be read)."""
    if cache is not None and cache.may_hold(record.hash):
        return None
    return record.may_use_cache, record.params is not None and record.params.overwrite


def _verdict(found: Hit | Miss | None) -> str:
    if found is None:
        return NOT_CACHED
    return CACHED if isinstance(found, Hit) else found.kind


def render(outlooks: dict[Record, list[Outlook]], *, hashes: bool) -> Iterator[str]:
    """The lines ``parafactory plan`` prints: each record, then its stages."""
    width = max((len(o.stage) for calls in outlooks.values() for o in calls), default=0)
    lines: dict[Outlook, str] = {}  # a sweep has few distinct ones: each formatted once
    for record, calls in outlooks.items():
        yield f"{record.name} [{record.hash}]" if hashes else record.name
        for outlook in calls:
            line = lines.get(outlook)
            if line is None:
                line = lines[outlook] = f"    {outlook.stage:<{width}}  {_how(outlook.verdict)}"
            yield line


def _how(verdict: str) -> str:
    return "load from cache" if verdict == CACHED else f"compute: {verdict}"


def totals(outlooks: dict[Record, list[Outlook]]) -> str:
    """One line: records and stage calls, how many load and how many compute, by reason."""
    verdicts = collections.Counter(o.verdict for calls in outlooks.values() for o in calls)
    cached = verdicts.pop(CACHED, 0)
    computed = sum(verdicts.values())
    line = f"{len(outlooks)} records, {cached + computed} stage calls: {cached} from cache, "
    line += f"{computed} to compute"
    if verdicts:
        line += f" ({', '.join(f'{count} {why}' for why, count in verdicts.most_common())})"
    return line
