"""``@stage`` and ``@aggregate``, and the one runner that executes them.

The decorators check their arguments against the function, attach a frozen
:class:`StageSpec` and return a thin callable. Calling it runs the stage at
once, or, while ``manager.run`` plans an experiment, records the call for the
scheduler. Workers run stages through the same :func:`execute`.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
import logging
import sys
import uuid
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, SupportsIndex

from .._errors import (
    StageDefinitionError,
    StageInputError,
    StageOutputError,
    UpstreamFailedError,
    quoted_names,
)
from .cache import (
    Artifact,
    Cache,
    Cacher,
    Entry,
    ForeseenEntry,
    Hit,
    Lazy,
    ListedCache,
    Miss,
    Provenance,
    code_fingerprint,
    provenance_after,
    provenance_digest,
)
from .code_origin import CodeOrigin, origin_of, restore
from .parameters import combined_hash
from .records import OutputOf, Record, State
from .reportables import CACHED_REPORTABLES, REPORTABLES, forget, replace
from .time_limits import call_with_time_limit, effective_limit

logger = logging.getLogger("parafactory")


@dataclasses.dataclass(frozen=True)
class StageSpec:
    """What a decorator knows about one stage function."""

    name: str
    function: Callable[..., Any]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    is_aggregate: bool
    cachers: tuple[Cacher, ...] = ()
    lazy: frozenset[str] = frozenset()
    fingerprint: str | None = None  # of the function's code, to notice stale cache entries
    suppress_missing_inputs: bool = False  # inputs missing from the state arrive as None
    timeout: float | None = None  # seconds a call may run before it is stopped

    @functools.cached_property
    def output_reference(self) -> OutputOf:
        """``record.output`` after this stage ran: its outputs, read from the state."""
        return OutputOf(self.outputs, several=len(self.outputs) > 1)

    def __reduce_ex__(self, protocol: SupportsIndex) -> Any:
        # The decorated callable is what a module exposes under the function's name, so a
        # spec travels as a reference to it; one defined in __main__ or a notebook travels
        # by value (cloudpickle), with where its code came from, for its tracebacks.
        stage_callable = _importable_callable(self)
        if stage_callable is not None:
            return (spec_of, (stage_callable,))
        fields = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}
        return (_arrived, (fields, origin_of(self.function)))


def _arrived(fields: dict[str, Any], origin: CodeOrigin) -> StageSpec:
    """A spec that travelled by value, in the process it reached: its code named after
    the file or cell it came from."""
    restore(origin)
    return StageSpec(**fields)


def stage(
    inputs: Sequence[str] | None = None,
    outputs: Sequence[str | Lazy] | None = None,
    cachers: Sequence[Cacher | type[Cacher]] | None = None,
    suppress_missing_inputs: bool = False,
    *,
    check_code: bool = True,
    timeout: float | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Record]]:
    """Make ``fn(record, **inputs)`` a stage: inputs come from ``record.state``, the
    return value is stored there under ``outputs``, and the record is returned.

    With ``cachers`` (one per output) outputs are saved to the manager's cache and a
    later run skips the stage; ``Lazy("name")`` outputs stay on disk until read. A
    cache entry made by other code (``check_code``) is recomputed. With
    ``suppress_missing_inputs`` an input missing from the state arrives as ``None``.
    ``timeout`` (seconds) stops a call that runs longer with :class:`StageTimeoutError`.

    >>> @stage(inputs=["initial_value"], outputs=["final_value"])
    ... def multiply_again(record, initial_value):
    ...     return initial_value * record.params.some_scalar_multiplier
    """
    options = _Options(inputs, outputs, cachers, suppress_missing_inputs, check_code, timeout)

    def decorate(function: Callable[..., Any]) -> Callable[..., Record]:
        spec = _make_spec(function, options, is_aggregate=False)

        @functools.wraps(function)
        def call_stage(record: Record, *args: Any, **kwargs: Any) -> Record:
            if type(record) is Record and record._planner is not None:
                # Planned, as _call would do it: a sweep's many calls come this way.
                record._planner.add_call(spec, record, None, args, kwargs)
                return record
            return _call(spec, record, None, args, kwargs)

        call_stage.spec = spec  # type: ignore[attr-defined]
        return call_stage

    return decorate


def aggregate(
    inputs: Sequence[str] | None = None,
    outputs: Sequence[str | Lazy] | None = None,
    cachers: Sequence[Cacher | type[Cacher]] | None = None,
    *,
    check_code: bool = True,
    timeout: float | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Record]]:
    """Make ``fn(record, records, **inputs)`` an aggregate stage over several records.

    Each input arrives as a ``dict[Record, value]`` over the records whose state
    has it; a record lacking it is left out with a warning. ``records=None``
    means, inside ``manager.run``, the records that experiment created, and
    called eagerly every other record of the manager.

    >>> @aggregate(inputs=["final_value"], outputs=["maximum_value"])
    ... def find_maximum(record, records, final_value):
    ...     return max(final_value.values())
    >>> for param_set in param_sets:
    ...     record = multiply_again(get_initial_value(Record(manager, param_set)))
    >>> find_maximum(Record(manager, None)).state["maximum_value"]
    20.0
    """
    options = _Options(inputs, outputs, cachers, False, check_code, timeout)

    def decorate(function: Callable[..., Any]) -> Callable[..., Record]:
        spec = _make_spec(function, options, is_aggregate=True)

        @functools.wraps(function)
        def call_aggregate(
            record: Record, records: Sequence[Record] | None = None, *args: Any, **kwargs: Any
        ) -> Record:
            return _call(spec, record, records, args, kwargs)

        call_aggregate.spec = spec  # type: ignore[attr-defined]
        return call_aggregate

    return decorate


class _Options(NamedTuple):
    """What ``@stage``/``@aggregate`` were given, before it is checked."""

    inputs: Sequence[str] | None
    outputs: Sequence[str | Lazy] | None
    cachers: Sequence[Cacher | type[Cacher]] | None
    suppress_missing_inputs: bool
    check_code: bool
    timeout: float | None


def _importable_callable(spec: StageSpec) -> Any:
    """The ``@stage`` callable importable as ``module.qualname`` whose spec is ``spec``."""
    module = sys.modules.get(spec.function.__module__)
    qualname = spec.function.__qualname__
    if module is None or spec.function.__module__ == "__main__" or "<locals>" in qualname:
        return None
    found: Any = module
    for part in qualname.split("."):
        found = getattr(found, part, None)
    return found if spec_of(found) is spec else None


def travels_by_value(spec: StageSpec) -> bool:
    """Whether ``spec`` reaches workers pickled by value (with its globals), not by name."""
    return _importable_callable(spec) is None


def spec_of(candidate: Any) -> StageSpec | None:
    """The spec a ``@stage``/``@aggregate`` callable carries, or ``None`` for anything else."""
    spec = getattr(candidate, "spec", None)
    return spec if isinstance(spec, StageSpec) else None


class Outcome(NamedTuple):
    """How one stage call went: its outputs were ``cached`` (loaded from the cache, not
    run), or it ran; ``why``: why a stage whose outputs could have been cached ran anyway
    (``None``: it had nothing cached, or caches nothing)."""

    cached: bool
    why: str | None = None

    def __str__(self) -> str:
        if self.cached:
            return LOADED
        return COMPUTED if self.why is None else f"{RECOMPUTED} {self.why}"


LOADED, COMPUTED, RECOMPUTED = "loaded from cache", "computed", "recomputed because"
_LOADED, _COMPUTED = Outcome(cached=True), Outcome(cached=False)  # made once: the usual cases


def execute(
    spec: StageSpec,
    record: Record,
    records: Sequence[Record] | None,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    cache: Cache | None = None,
    timeout: float | None = None,
) -> Outcome:
    """Run one stage or aggregate on ``record`` now, storing its outputs in ``record.state``;
    returns whether they came from the cache, or why it ran when they could have.

    With a ``cache``, a stage whose outputs are cached, by the same code from the same
    upstream state, is not run: its outputs enter the state unloaded, and load when
    something reads them. ``timeout`` (seconds) limits the call, with the stage's own.
    """
    group = list(records) if records is not None else []
    upstream, arguments, found = _consult_cache(spec, record, group, args, kwargs, cache)
    if isinstance(found, Hit):
        take_outputs(spec, record, found)
        return _LOADED
    provenance: Provenance = (upstream, spec.name, spec.fingerprint, arguments)
    why = None
    if found is not None:
        provenance, why = _explain_recompute(spec, record, found, provenance)
    forget(record, spec.name)  # what it reports now replaces what it reported before
    result = _invoke(spec, record, group, args, kwargs, cache, timeout)
    values = _output_values(spec, record, result)
    if cache is not None and spec.cachers:
        provenance = provenance_digest(provenance)
        entry = _entry(spec, record, arguments)
        stored = _with_reportables(spec, record, values)
        values = cache.store(entry, stored, provenance_digest(upstream), provenance)
    for name, value in values.items():
        record.state[name] = value
    record.output = _output_reference(spec, result)
    record.stages.append(spec.name)
    record._provenance = provenance
    return _COMPUTED if why is None else Outcome(cached=False, why=why)


def say(level: int, spec: StageSpec, record: Record, outcome: Outcome) -> None:
    """Log how a stage call went, in one line: ``stage 'fit' on record 'r1' (hash):
    computed`` (eager calls say it at INFO; runs, at DEBUG, and a line per stage at INFO)."""
    if logger.isEnabledFor(level):
        kind = "aggregate" if spec.is_aggregate else "stage"
        logger.log(
            level, "%s %r on record %r (%s): %s", kind, spec.name, record.name, record.hash, outcome
        )


def foresee(
    spec: StageSpec,
    record: Record,
    records: Sequence[Record] | None,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    cache: ListedCache,
) -> Hit | Miss | None:
    """What :func:`execute` would find in the cache for this call, without running the
    stage, loading anything or logging: a :class:`Hit`, a :class:`Miss` saying why the
    stage would compute, or ``None`` for a stage that is not cached. The record is left
    with the provenance (and, for an aggregate, the hash) the call would give it, and a
    call that would compute leaves the entry it would store with ``cache``, so the calls
    after it are foreseen as they would run."""
    group = list(records) if records is not None else []
    upstream, arguments, found = _consult_cache(spec, record, group, args, kwargs, cache)
    if isinstance(found, Hit):
        record._provenance = found.provenance
        return found
    record._provenance = _recomputed(found, (upstream, spec.name, spec.fingerprint, arguments))
    if found is not None:  # a cached stage: the run stores what it computes
        stored = ForeseenEntry(
            spec.fingerprint,
            provenance_digest(upstream),
            arguments,
            provenance_digest(record._provenance),
        )
        cache.foreseen_entries(record.hash)[spec.name] = stored
    return found


def _consult_cache(
    spec: StageSpec,
    record: Record,
    group: list[Record],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    cache: Cache | None,
) -> tuple[Provenance, str, Hit | Miss | None]:
    """Before a call: make an aggregate's record one over its group (``records``), then
    look the call up; returns the provenance it starts from, its arguments' digest, and
    what was found."""
    if spec.is_aggregate:
        _aggregate_over(record, group)
        upstream = upstream_of(spec, record, group)
    else:
        upstream = record._provenance
    arguments = arguments_digest(args, kwargs) if args or kwargs else ""
    found = lookup(spec, record, upstream, arguments, cache) if spec.cachers else None
    return upstream, arguments, found


def _aggregate_over(record: Record, group: list[Record]) -> None:
    """Make ``record`` an aggregate record over ``group``: curifactory's combined hash of
    its own and each member's *parameters* hash (``"None"`` for a member without)."""
    own = record.params.hash if record.params is not None else None
    members = [member.params.hash if member.params is not None else None for member in group]
    record.combo_hash = combined_hash(own, members)
    record.input_records = group
    record._aggregated = bool(group)
    record._inputs_overwrite = any(
        member.params is not None and member.params.overwrite for member in group
    )


def _invoke(
    spec: StageSpec,
    record: Record,
    group: list[Record],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    cache: Cache | None,
    timeout: float | None,
) -> Any:
    """Call the stage's function with its inputs; a keyword argument given at the call
    takes the place of the input of that name (as in curifactory)."""
    if spec.is_aggregate:
        leading: tuple[Any, ...] = (record, group)
        inputs = _collect_inputs(spec, group, kwargs)
    else:
        leading = (record,)
        inputs = _read_inputs(spec, record, kwargs) if spec.inputs else {}
    limit = spec.timeout if timeout is None else effective_limit(spec.timeout, timeout)
    outer, record._running = record._running, (spec.name, cache)
    try:
        if limit is None:
            return spec.function(*leading, *args, **inputs, **kwargs)
        return call_with_time_limit(
            limit, record.name, spec.name, spec.function, *leading, *args, **inputs, **kwargs
        )
    finally:
        record._running = outer  # a stage may call another on its record


def upstream_of(spec: StageSpec, record: Record, group: Sequence[Record]) -> Provenance:
    """The provenance a stage starts from: the record's own, and for an aggregate also
    that of every record in its group (as the group is a set, in no particular order)."""
    if not spec.is_aggregate:
        return record._provenance
    members = ",".join(sorted(provenance_digest(member._provenance) for member in group))
    return provenance_after(record._provenance, "<records>", None, members)


def lookup(
    spec: StageSpec, record: Record, upstream: Provenance, arguments: str, cache: Cache | None
) -> Hit | Miss | None:
    """The stage's cached outputs for ``record`` from ``upstream``, why there are none
    (:class:`Miss`), or ``None`` when the stage is not cached at all."""
    if cache is None or not spec.cachers:
        return None
    if not record.may_use_cache:
        return Miss(_NO_PARAMETERS, "no parameters")
    if cache.forces(spec.name):
        forced = _OVERWRITE_STAGE if spec.name in cache.overwrite_stages else _OVERWRITE_ALL
        return Miss(forced, "overwrite")
    if record.params is not None and record.params.overwrite:
        return Miss(_OVERWRITE_PARAMS, "overwrite")
    if not cache.may_hold(record.hash):
        return _NEW
    found = cache.lookup(_entry(spec, record, arguments), provenance_digest(upstream))
    if isinstance(found, Hit) and record.params is None and record._inputs_overwrite:
        # curifactory's rule, where provenance saw no change
        return Miss(_OVERWRITE_INPUTS, "overwrite")
    return found


def stored_artifact(
    spec: StageSpec,
    record: Record,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    cache: Cache,
    output: str,
) -> Artifact | None:
    """The cache file a call of ``spec`` on ``record`` just stored for ``output``."""
    return cache.stored(_entry(spec, record, arguments_digest(args, kwargs)), output)


def take_outputs(spec: StageSpec, record: Record, found: Hit) -> None:
    """Put a cache hit's outputs, unloaded, in the record, as if the stage had run; what
    the stage reported comes back from the cache too."""
    record.state.update(found.artifacts)
    record.output = _output_reference(spec, None)  # the returned value: from the cache
    record.stages.append(spec.name)
    record._provenance = found.provenance
    reported = found.extras.get(REPORTABLES)
    replace(record, spec.name, reported.load() if reported is not None else ())


def _with_reportables(spec: StageSpec, record: Record, values: dict[str, Any]) -> dict[str, Any]:
    """The outputs to cache, with what the stage reported, which is kept with them."""
    reported = record._reportables.get(spec.name) if record._reportables else None
    return {**values, REPORTABLES: reported} if reported else values


_OVERWRITE_ALL = "the manager overwrites every stage"
_OVERWRITE_STAGE = "the manager overwrites this stage"
_OVERWRITE_PARAMS = "its parameters set overwrite=True"
_OVERWRITE_INPUTS = "a record it aggregates sets overwrite=True"
_NEW = Miss("new")
_NO_PARAMETERS = "its record has no parameters"  # never loaded, as in curifactory; said once


def _explain_recompute(
    spec: StageSpec, record: Record, miss: Miss, provenance: Provenance
) -> tuple[Provenance, str | None]:
    """Why a cached stage runs (``None``: it had nothing cached), and the provenance its
    outputs will carry. A damaged entry is also a warning, naming its file."""
    if miss.damaged:
        where = f"stage {spec.name!r} on record {record.name!r} ({record.hash})"
        logger.warning("%s recomputes: %s", where, miss.reason)
        return provenance, _DAMAGED
    if miss.kind in ("new", "no parameters"):
        return provenance, None
    why = miss.reason if miss.kind == "overwrite" else f"its cache is stale: {miss.reason}"
    return _recomputed(miss, provenance), why


_DAMAGED = "its cache entry was damaged"


def _recomputed(found: Miss | None, provenance: Provenance) -> Provenance:
    """The provenance of a stage's outputs when it computes: a forced recompute gets one of
    its own, so every stage and aggregate that reads its outputs recomputes too, in this
    run or, if it is interrupted, the next."""
    if found is not None and found.kind == "overwrite":
        return provenance_after(provenance, "<overwrite>", None, uuid.uuid4().hex)
    return provenance


def _entry(spec: StageSpec, record: Record, arguments: str) -> Entry:
    return Entry(
        spec.name,
        record.hash,
        spec.outputs,
        spec.cachers,
        spec.lazy,
        spec.fingerprint,
        arguments,
        CACHED_REPORTABLES,
    )


def arguments_digest(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """A digest of the extra arguments of a stage call ("" for none): part of its provenance."""
    if not args and not kwargs:
        return ""
    return hashlib.md5(repr((args, sorted(kwargs.items()))).encode()).hexdigest()


def _output_reference(spec: StageSpec, result: Any) -> Any:
    """What ``record.output`` keeps: a reference to the outputs in state, or the value itself."""
    return spec.output_reference if spec.outputs else result


def _call(
    spec: StageSpec,
    record: Record,
    records: Sequence[Record] | None,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Record:
    if not isinstance(record, Record):
        raise TypeError(
            f"stage {spec.name!r} takes a Record as its first argument, got "
            f"{type(record).__name__}; call it as {spec.name}(record)"
        )
    if record._planner is not None:
        record._planner.add_call(spec, record, records, args, kwargs)
        return record
    manager = record.manager
    if manager is None:
        raise TypeError(
            f"stage {spec.name!r} was called on a record without a manager; create records "
            "with Record(manager, params)"
        )
    if spec.is_aggregate and records is None:
        records = [other for other in manager.records if other is not record]
    with manager.stage_logs(record.name):
        outcome = execute(spec, record, records, args, kwargs, manager.cache)
    say(logging.INFO, spec, record, outcome)
    return record


def _read_inputs(spec: StageSpec, record: Record, kwargs: dict[str, Any]) -> dict[str, Any]:
    """A stage's inputs from the state, except those given as keyword arguments. With
    ``suppress_missing_inputs`` a missing one is left out, so its default applies."""
    inputs = {}
    for name in spec.inputs:
        if name in kwargs:
            continue
        if name in record.state:
            inputs[name] = record.state[name]
        elif spec.suppress_missing_inputs:
            _check_default(spec, record, name)
        else:
            raise StageInputError(
                f"stage {spec.name!r} needs input {name!r}, which is not in the state of "
                f"record {record.name!r} (it has {sorted(record.state)}); run the stage that "
                f"outputs {name!r} on this record first, or pass {name}=... to the stage call",
                record_name=record.name,
                stage_name=spec.name,
            )
    return inputs


def _check_default(spec: StageSpec, record: Record, name: str) -> None:
    """A suppressed missing input needs a default value in the function's signature."""
    parameter = inspect.signature(spec.function).parameters.get(name)
    if parameter is None or parameter.default is parameter.empty:
        raise StageInputError(
            f"stage {spec.name!r} suppresses missing inputs, but input {name!r} is missing "
            f"from the state of record {record.name!r} and its parameter has no default "
            "value: give it one in the function's signature",
            record_name=record.name,
            stage_name=spec.name,
        )
    logger.warning(
        "stage %r on record %r: input %r is missing, so its default value is used",
        spec.name,
        record.name,
        name,
    )


def nothing_to_aggregate(
    spec: StageSpec, record: Record, records: Sequence[Record], kwargs: dict[str, Any]
) -> UpstreamFailedError | None:
    """Why an aggregate is not run on ``record``: every record it aggregates failed, and
    not one holds any of its inputs (those not given as keyword arguments), so it would
    aggregate nothing but those failures. ``None`` when it runs, over what exists, as
    curifactory's would: some record holds an input, or one lacks them without failing,
    or it takes no inputs (it may read the records themselves)."""
    wanted = [name for name in spec.inputs if name not in kwargs]
    if not records or not wanted or any(member.error is None for member in records):
        return None
    if any(name in member.state for member in records for name in wanted):
        return None
    names = quoted_names([member.name for member in records])
    return UpstreamFailedError(
        f"aggregate {spec.name!r} was not run on record {record.name!r}: every record it "
        f"aggregates failed ({names}), so none holds its inputs {wanted}; fix their "
        "failures and run again",
        record_name=record.name,
        stage_name=spec.name,
    )


def _collect_inputs(
    spec: StageSpec, records: list[Record], kwargs: dict[str, Any]
) -> dict[str, dict[Record, Any]]:
    """Each input of an aggregate as ``{record: value}`` over the records that have it
    (unless given as a keyword argument); the records lacking one are left out of it,
    named in one warning."""
    inputs: dict[str, dict[Record, Any]] = {}
    lacking: dict[str, list[str]] = {}
    for name in spec.inputs:
        if name in kwargs:
            continue
        found = inputs[name] = State()  # values on disk load only when the aggregate reads them
        for other in records:
            if name in other.state:
                dict.__setitem__(found, other, dict.__getitem__(other.state, name))
            else:
                lacking.setdefault(name, []).append(other.name)
    if lacking:
        logger.warning(
            "aggregate %r leaves records out of inputs they lack: %s",
            spec.name,
            "; ".join(
                f"{name!r} is missing from {quoted_names(who)}" for name, who in lacking.items()
            ),
        )
    return inputs


def _output_values(spec: StageSpec, record: Record, result: Any) -> dict[str, Any]:
    """The outputs of a returned value, as in curifactory: a returned tuple *is* the
    outputs, one value per output; anything else is the one output."""
    if not spec.outputs:
        return {}
    if not isinstance(result, tuple):
        if len(spec.outputs) == 1:
            return {spec.outputs[0]: result}
        values: tuple[Any, ...] = (result,)
    else:
        values = result
    if len(values) != len(spec.outputs):
        returned = f"a tuple of {len(values)}" if isinstance(result, tuple) else "one value"
        raise StageOutputError(
            f"stage {spec.name!r} declares {len(spec.outputs)} output(s) {list(spec.outputs)} "
            f"but returned {returned} on record {record.name!r}: a returned tuple is the "
            "outputs, one value per output (to store a tuple as one output, return "
            "(the_tuple,))",
            record_name=record.name,
            stage_name=spec.name,
        )
    return dict(zip(spec.outputs, values, strict=True))


def _make_spec(function: Callable[..., Any], options: _Options, *, is_aggregate: bool) -> StageSpec:
    kind = "aggregate" if is_aggregate else "stage"
    name = getattr(function, "__name__", None)
    if not callable(function) or name is None:
        raise StageDefinitionError(f"@{kind} decorates a named function, got {function!r}")
    outputs = options.outputs
    if isinstance(outputs, str):  # list("result") would be six outputs
        _names(kind, name, "outputs", outputs)
    declared = list(outputs or [])
    lazy = frozenset(output.name for output in declared if isinstance(output, Lazy))
    names = [output.name if isinstance(output, Lazy) else output for output in declared]
    spec = StageSpec(
        name=name,
        function=function,
        inputs=_names(kind, name, "inputs", options.inputs),
        outputs=_names(kind, name, "outputs", names if outputs is not None else None),
        is_aggregate=is_aggregate,
        cachers=_check_cachers(kind, name, options.cachers, len(names), lazy),
        lazy=lazy,
        fingerprint=code_fingerprint(function) if options.check_code else None,
        suppress_missing_inputs=options.suppress_missing_inputs,
        timeout=check_timeout(f"@{kind} {name!r}", options.timeout),
    )
    _check_signature(spec, kind)
    return spec


def check_timeout(owner: str, timeout: Any) -> float | None:
    """A time limit in seconds: ``None``, or a positive number."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ValueError(f"{owner}: timeout must be a positive number of seconds, got {timeout!r}")
    return float(timeout)


def _check_cachers(
    kind: str,
    name: str,
    cachers: Sequence[Cacher | type[Cacher]] | None,
    outputs: int,
    lazy: frozenset[str],
) -> tuple[Cacher, ...]:
    if cachers is None:
        if lazy:
            raise StageDefinitionError(
                f"@{kind} {name!r}: Lazy outputs {sorted(lazy)} live on disk, so they need "
                "cachers=[...] (one per output), e.g. cachers=[PickleCacher()]"
            )
        return ()
    if not cachers and not outputs:
        raise StageDefinitionError(
            f"@{kind} {name!r}: cachers=[] with no outputs caches nothing (curifactory "
            "refuses it too): leave cachers out"
        )
    if len(cachers) != outputs:
        raise StageDefinitionError(
            f"@{kind} {name!r} has {outputs} outputs but {len(cachers)} cachers; "
            "give one cacher per output, in the same order"
        )
    instances = [cacher() if isinstance(cacher, type) else cacher for cacher in cachers]
    for cacher in instances:
        if not all(callable(getattr(cacher, m, None)) for m in ("save", "load", "path")):
            raise StageDefinitionError(
                f"@{kind} {name!r}: {cacher!r} is not a cacher; pass cachers such as "
                "PickleCacher(), or a Cacher subclass with save(obj, path) and load(path)"
            )
    return tuple(instances)


def _names(kind: str, stage_name: str, what: str, names: Sequence[str] | None) -> tuple[str, ...]:
    if names is None:
        return ()
    if isinstance(names, str) or not all(isinstance(n, str) for n in names):
        raise StageDefinitionError(
            f"@{kind} {stage_name!r}: {what} must be a list of strings, got {names!r}; "
            f"write {what}=[{names!r}] for a single name"
        )
    if len(set(names)) != len(names):
        raise StageDefinitionError(f"@{kind} {stage_name!r}: {what} {list(names)} repeat a name")
    return tuple(names)


def _check_signature(spec: StageSpec, kind: str) -> None:
    parameters = list(inspect.signature(spec.function).parameters.values())
    leading = 2 if spec.is_aggregate else 1
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    takes_varargs = any(p.kind == p.VAR_POSITIONAL for p in parameters)
    if len(positional) < leading and not takes_varargs:
        expected = "(record, records, ...)" if spec.is_aggregate else "(record, ...)"
        raise StageDefinitionError(f"@{kind} {spec.name!r} must accept {expected}")
    if any(p.kind == p.VAR_KEYWORD for p in parameters):
        return
    accepted = {p.name for p in parameters[leading:] if p.kind != p.VAR_POSITIONAL}
    missing = [name for name in spec.inputs if name not in accepted]
    if missing:
        raise StageDefinitionError(
            f"@{kind} {spec.name!r} declares inputs {missing} that its function does not "
            f"accept; add parameters named {', '.join(missing)} (inputs arrive as keyword "
            f"arguments)"
        )
