"""What a run would do, before it runs: for each record's stages, loaded or computed, and why.

The planner's steps are walked in their order (a step only waits on earlier ones) and
each call is put to the cache as the run would put it (:func:`foresee`): a stage that
would compute passes on the provenance its outputs would have, so what reads it is
foreseen as stale or not, exactly as the run will find it. Nothing is loaded or run.
"""

from __future__ import annotations

import collections
import operator
from collections.abc import Callable, Iterable, Iterator
from typing import NamedTuple

from .._core.plan import Call, Plan, Step
from .._model.cache import Hit, ListedCache, Miss, Provenance, files_of
from .._model.records import Record, copy_provenance
from .._model.stages import foresee

CACHED = "cached"
NOT_CACHED = "not cached"  # a stage without cachers (or a dry run): it always computes


class Outlook(NamedTuple):
    """One stage call of a record: loaded from the cache, or computed and why."""

    stage: str
    verdict: str  # CACHED, or why it computes: a MissKind or NOT_CACHED


def foresee_plan(plan: Plan, cache: ListedCache) -> dict[Record, tuple[Outlook, ...]]:
    """Each record of ``plan`` (hidden ones too, in the order they were made) with what
    each of its stage calls would do (records foreseen alike share one tuple)."""
    outlooks: dict[Record, tuple[Outlook, ...]] = {}
    foresight = _Foresight(plan, cache)
    for step in plan.steps:
        record = step.record
        if step.copy_of is not None:
            copy_provenance(step.copy_of, record)
        found = foresight.step(step)
        earlier = outlooks.get(record)
        outlooks[record] = found if earlier is None else earlier + found
    return outlooks


class _Foresight:
    """Foresees the steps of a plan one after another, as the run will make them.

    Calls that would compute store their entries with the cache, for the calls after them
    to find. The calls on a record store entries no other call looks up when they are of
    regular stages none called twice, on a hash no other record has. Each step of such a
    record is then decided by its calls, the provenance it starts from, the record's
    parameters' overwrite flag and what the cache holds for them: nothing, or entries its
    index describes. So such steps share their outcome, foreseen once for each distinct
    start and set of entries (a sweep of 100,000 records, new or cached, has a handful).
    """

    def __init__(self, plan: Plan, cache: ListedCache) -> None:
        self.cache = cache
        self.shared: dict[tuple[object, ...], tuple[Provenance, tuple[Outlook, ...]]] = {}
        self.last_steps = plan.last_steps
        self.lone_hashes = _lone_hashes(self.last_steps)
        self.fresh_hashes = cache.holding_nothing_of(self.lone_hashes)
        # by a step's calls (see sharing_key): what the index says of their entries
        self.indexed_calls: dict[tuple[int, int], Callable[[str], tuple[object, ...]]] = {}

    def step(self, step: Step) -> tuple[Outlook, ...]:
        """What the calls of ``step`` would do, leaving its record as they would."""
        key = self.sharing_key(step)
        if key is None:
            return self.each_call(step)
        known = self.shared.get(key)
        if known is None:
            found = self.each_call(step)
            self.shared[key] = (step.record._provenance, found)  # as the calls left it
            return found
        step.record._provenance = known[0]
        return known[1]

    def each_call(self, step: Step) -> tuple[Outlook, ...]:
        """What the calls of ``step`` would do, foreseen one by one."""
        return tuple(_outlook_of(call, step.record, self.cache) for call in step.calls)

    def sharing_key(self, step: Step) -> tuple[object, ...] | None:
        """What decides the outcome of ``step``, if it shares it; ``None`` if it does not
        (its calls are foreseen one by one)."""
        record = step.record
        every_call = self.last_steps[record].path  # on the record, in all its steps
        if every_call is None or not every_call.distinct_stages:
            return None
        if record.hash in self.fresh_hashes:
            held: tuple[object, ...] | None = ()
        elif record.hash in self.lone_hashes:
            held = self.held(step)
            if held is None:
                return None
        else:
            return None
        # The node of the plan's tree of call sequences the step ends at, and how many
        # calls it has, tell which calls it makes.
        params = record.params  # may the record use the cache, and must it overwrite
        overwrite = None if params is None else params.overwrite
        return (id(step.path), len(step.calls), record._provenance, overwrite, held)

    def held(self, step: Step) -> tuple[object, ...] | None:
        """What the cache's index says of the entries the calls of ``step`` look up, if
        that decides each lookup (``None``: some entry's files must be read)."""
        calls = (id(step.path), len(step.calls))
        indexed = self.indexed_calls.get(calls)
        if indexed is None:
            indexed = self.indexed_calls[calls] = self.cache.indexed_entries(
                [
                    (spec.name, files_of(spec.name, spec.outputs, spec.cachers))
                    for spec in (call.spec for call in step.calls)
                    if spec.cachers
                ]
            )
        held = indexed(step.record.hash)
        return None if None in held else held


def _lone_hashes(records: Iterable[Record]) -> set[str]:
    """The hashes only one of ``records`` has (in a sweep, most often all of them)."""
    hashes = list(map(operator.attrgetter("hash"), records))
    distinct = set(hashes)
    if len(distinct) == len(hashes):
        return distinct
    counts = collections.Counter(hashes)
    return {record_hash for record_hash, count in counts.items() if count == 1}


def _outlook_of(call: Call, record: Record, cache: ListedCache) -> Outlook:
    found = foresee(call.spec, record, call.group, call.args, call.kwargs, cache)
    return Outlook(call.spec.name, _verdict(found))


def _verdict(found: Hit | Miss | None) -> str:
    if found is None:
        return NOT_CACHED
    return CACHED if isinstance(found, Hit) else found.kind


def render(outlooks: dict[Record, tuple[Outlook, ...]], *, hashes: bool) -> Iterator[str]:
    """What ``parafactory plan`` prints, a record at a time: its name, then a line for each
    of its stage calls."""
    distinct = _distinct(outlooks).values()
    width = max((len(o.stage) for calls in distinct for o in calls), default=0)
    blocks: dict[tuple[Outlook, ...], str] = {}  # a sweep has few distinct ones
    for record, calls in outlooks.items():
        block = blocks.get(calls)
        if block is None:
            block = blocks[calls] = "".join(
                f"\n    {o.stage:<{width}}  {_how(o.verdict)}" for o in calls
            )
        yield (f"{record.name} [{record.hash}]" if hashes else record.name) + block


def _how(verdict: str) -> str:
    return "load from cache" if verdict == CACHED else f"compute: {verdict}"


def totals(outlooks: dict[Record, tuple[Outlook, ...]]) -> str:
    """One line: records and stage calls, how many load and how many compute, by reason."""
    records_alike = collections.Counter(map(id, outlooks.values()))
    distinct = _distinct(outlooks)
    verdicts: collections.Counter[str] = collections.Counter()
    for identity, count in records_alike.items():
        for outlook in distinct[identity]:
            verdicts[outlook.verdict] += count
    cached = verdicts.pop(CACHED, 0)
    computed = sum(verdicts.values())
    line = f"{len(outlooks)} records, {cached + computed} stage calls: {cached} from cache, "
    line += f"{computed} to compute"
    if verdicts:
        line += f" ({', '.join(f'{count} {why}' for why, count in verdicts.most_common())})"
    return line


def _distinct(outlooks: dict[Record, tuple[Outlook, ...]]) -> dict[int, tuple[Outlook, ...]]:
    """The distinct tuples of ``outlooks``, by identity (records foreseen alike share one)."""
    return {id(calls): calls for calls in outlooks.values()}
