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

from .._core.plan import Call, Plan, Step
from .._model.cache import Hit, ListedCache, Miss, Provenance
from .._model.records import Record, copy_provenance
from .._model.stages import foresee

CACHED = "cached"
NOT_CACHED = "not cached"  # a stage without cachers (or a dry run): it always computes


class Outlook(NamedTuple):
    """One stage call of a record: loaded from the cache, or computed and why."""

    stage: str
    verdict: str  # CACHED, or why it computes: a MissKind or NOT_CACHED


def foresee_plan(plan: Plan, cache: ListedCache) -> dict[Record, list[Outlook]]:
    """Each record of ``plan`` (hidden ones too, in the order they were made) with what
    each of its stage calls would do."""
    outlooks: dict[Record, list[Outlook]] = {}
    foresight = _Foresight(plan, cache)
    for step in plan.steps:
        calls = outlooks.get(step.record)
        if calls is None:
            calls = outlooks[step.record] = []
        foresight.enter(step)
        calls += [foresight.outlook(call) for call in step.calls]
    return outlooks


class _Foresight:
    """Foresees the calls of one step after another, as the run will make them.

    Calls that would compute store their entries with the cache, for the calls after them
    to find. A step whose entries no later call looks up shares its calls' outcomes with
    other such steps: its record's last, on a record of a hash of its own that the cache
    holds nothing of, of plain calls of distinct stages. Its calls are then decided by the
    call, the provenance it starts from and the record's overwrite flags alone: each is
    foreseen once for each distinct start (a new sweep of 100,000 records has a handful).
    """

    def __init__(self, plan: Plan, cache: ListedCache) -> None:
        self.cache = cache
        self.shared: dict[tuple[object, ...], tuple[Provenance, Outlook]] = {}
        self.last_steps = {step.record: step for step in plan.steps}
        hashes = collections.Counter(record.hash for record in self.last_steps)
        self.lone_hashes = {record_hash for record_hash, count in hashes.items() if count == 1}
        self.plain: dict[tuple[int, int], bool] = {}  # see _plain_and_distinct
        self.record: Record | None = None
        self.flags: tuple[bool, bool] | None = None  # None: the step shares nothing

    def enter(self, step: Step) -> None:
        """The calls to come are ``step``'s."""
        record = self.record = step.record
        if step.copy_of is not None:
            copy_provenance(step.copy_of, record)
        self.flags = None
        if self._shares(step):
            overwrite = record.params is not None and record.params.overwrite
            self.flags = record.may_use_cache, overwrite

    def outlook(self, call: Call) -> Outlook:
        """What ``call`` would do, leaving the record as the call would."""
        record = self.record
        assert record is not None
        if self.flags is None:
            return _outlook_of(call, record, self.cache)
        key = (id(call), record._provenance, self.flags)
        known = self.shared.get(key)
        if known is None:
            outlook = _outlook_of(call, record, self.cache)
            self.shared[key] = (record._provenance, outlook)  # as the call left it
            return outlook
        record._provenance = known[0]
        return known[1]

    def _shares(self, step: Step) -> bool:
        if self.last_steps[step.record] is not step:
            return False
        record_hash = step.record.hash
        return (
            record_hash in self.lone_hashes
            and not self.cache.may_hold(record_hash)
            and self._plain_and_distinct(step)
        )

    def _plain_and_distinct(self, step: Step) -> bool:
        """Whether the step's calls are without arguments, each of a stage of its own; the
        same for every step ending at the same node of the plan's tree of call sequences
        with as many calls (each sequence is looked at once)."""
        key = (id(step.path), len(step.calls))
        plain = self.plain.get(key)
        if plain is None:
            specs = {id(call.spec) for call in step.calls if not (call.args or call.kwargs)}
            plain = len(specs) == len(step.calls) and not any(
                call.spec.is_aggregate for call in step.calls
            )
            self.plain[key] = plain
        return plain


def _outlook_of(call: Call, record: Record, cache: ListedCache) -> Outlook:
    found = foresee(call.spec, record, call.group, call.args, call.kwargs, cache)
    return Outlook(call.spec.name, _verdict(found))


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
