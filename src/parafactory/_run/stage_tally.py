"""What each stage did over a run, counted from the run's events, for one line per stage
at its end: ``stage 'train': 8 computed, 4 loaded from cache, 2 recomputed because its
code changed ('r1', 'r2'), 1 failed``."""

from __future__ import annotations

from .._core.events import ChainRan, Events, LoadedFromCache, RecordFailed
from .._errors import quoted_names
from .._model.records import Record
from .._model.stages import COMPUTED, LOADED, RECOMPUTED

_FAILED = "failed"


class StageTally:
    """What each stage did to each record: computed, loaded, recomputed (and why), failed."""

    def __init__(self) -> None:
        # stage -> id(record) -> (what happened, record name); stages in the order they came
        self._outcomes: dict[str, dict[int, tuple[str, str]]] = {}

    def follow(self, events: Events) -> None:
        """Subscribe to the events counted."""
        events.subscribe(self._chain_ran, ChainRan)
        events.subscribe(self._loaded, LoadedFromCache)
        events.subscribe(self._failed, RecordFailed)

    def _add(self, stage: str, outcome: str, record: Record) -> None:
        self._outcomes.setdefault(stage, {})[id(record)] = (outcome, record.name)

    def _chain_ran(self, event: ChainRan) -> None:  # for every record: kept short
        key, name, recomputed = id(event.record), event.record.name, event.recomputed
        for stage, _, _, cached in event.timings:
            done = self._outcomes.get(stage)
            if done is None:
                done = self._outcomes[stage] = {}
            if cached or stage not in recomputed:
                done[key] = (LOADED if cached else COMPUTED, name)
            else:
                done[key] = (f"{RECOMPUTED} {recomputed[stage]}", name)

    def _loaded(self, event: LoadedFromCache) -> None:
        for stage in event.stages:
            self._add(stage, LOADED, event.record)

    def _failed(self, event: RecordFailed) -> None:
        self._add(event.stage, _FAILED, event.record)  # in place of its timing's "computed"

    def lines(self) -> list[str]:
        """One line per stage that ran or loaded, in the order they first did."""
        return [f"stage {stage!r}: {_said(done)}" for stage, done in self._outcomes.items()]


def _said(done: dict[int, tuple[str, str]]) -> str:
    """``8 computed, 2 recomputed because its code changed ('r1', 'r2'), 1 failed``."""
    names: dict[str, list[str]] = {}
    for outcome, name in done.values():
        names.setdefault(outcome, []).append(name)
    order = [COMPUTED, LOADED, *sorted(o for o in names if o.startswith(RECOMPUTED)), _FAILED]
    parts = []
    for outcome in order:
        if outcome in names:
            named = f" ({quoted_names(names[outcome])})" if outcome.startswith(RECOMPUTED) else ""
            parts.append(f"{len(names[outcome])} {outcome}{named}")
    return ", ".join(parts)
