"""Records: one parameter set's state as it moves through stages.

A record pickles as its parameters and state alone, so it can travel to a
worker process; its link to the manager stays in the parent.
"""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import copy as copy_module
import dataclasses
import functools
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from .._errors import PlanningStateError
from .cache import Artifact, Cache, Provenance
from .parameters import ExperimentParameters, parameter_set_hash
from .reportables import Reportable, report_on


class RecordManager(Protocol):
    """What a record and its stages need of its manager: parafactory's ArtifactManager in
    the parent, a :class:`ManagerView` in a worker."""

    @property
    def name(self) -> str:
        """The run's name: the prefix of its cache files."""

    @property
    def records(self) -> Sequence[Record]:
        """The records an aggregate over ``records=None`` reads, called eagerly."""

    @property
    def cache(self) -> Cache | None:
        """The cache stages store into (``None``: dry)."""

    def stage_logs(self, record_name: str) -> contextlib.AbstractContextManager[None]:
        """Around a stage called eagerly on one of its records."""

    def _register(self, record: Record) -> None:
        """A record was made on this manager (not hidden): it joins ``records``."""


class CallRecorder(Protocol):
    """What records and stages tell while an experiment is planned (``_plan.Planner``)."""

    def add_record(self, record: Record, hidden: bool) -> None:
        """A record was created (``hidden``: it is not in the manager's records)."""

    def add_copy(self, original: Record, copy: Record) -> None:
        """``copy = original.make_copy()`` was called: the copy takes the state then."""

    def add_call(
        self,
        spec: Any,
        record: Record,
        records: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        """A stage or aggregate was called on ``record``."""


_planning: contextvars.ContextVar[CallRecorder | None] = contextvars.ContextVar(
    "parafactory_planning", default=None
)


@contextlib.contextmanager
def planning(recorder: CallRecorder) -> Iterator[None]:
    """While the block runs, records created (in this context) are planned by ``recorder``:
    their stage calls are recorded, not run."""
    token = _planning.set(recorder)
    try:
        yield
    finally:
        _planning.reset(token)


@dataclasses.dataclass(frozen=True)
class ManagerView:
    """What a stage running in a worker sees as ``record.manager``: the run's name and
    files, read only (the manager itself, with every record, stays in the parent)."""

    name: str
    cache_path: str
    dry: bool
    run_number: int
    reference: str

    cache: Cache | None = None
    records: tuple[Record, ...] = ()  # in a worker, a record sees no others

    @property
    def experiment_name(self) -> str:
        """curifactory's name for :attr:`name`."""
        return self.name

    def stage_logs(self, record_name: str) -> contextlib.AbstractContextManager[None]:
        """A stage called from within a stage, in a worker: its logs are taken already."""
        return contextlib.nullcontext()

    def _register(self, record: Record) -> None:
        """A record made in a worker stays with the stage that made it."""


RunningStage = tuple[str, "Cache | None"]
"""The stage running on a record, and the cache it stores into (``None``: dry): what
``record.get_path`` names files after. A plain tuple: one is made per stage call."""


class Record:
    """The state of one parameter set in one run.

    Creating a record sets ``params.hash`` and adds the record to
    ``manager.records`` unless ``hide=True``. ``params`` may be ``None`` for a
    record that only aggregates others.

    >>> r0 = Record(manager, MyParams(name="default"))
    >>> r0.state, r0.params.hash
    ({}, 'fbfbde1db878403f89d2b0b9cdf4fbbd')
    """

    # Defaults kept on the class: most records never change them, and a sweep has many.
    input_records: Sequence[Record] = ()  # what an aggregate on this record read
    _aggregated = False  # an aggregate over some records ran on it: it may cache
    _inputs_overwrite = False  # ... and one of those records says overwrite=True
    _provenance: Provenance = ""  # of the code that made the state so far (see _cache)
    _running: RunningStage | None = None  # set while a stage runs on it
    # what its stages reported, by stage, in the order they ran (a shared empty default:
    # a record gets its own on its first report)
    _reportables: dict[str, list[Reportable]] = {}
    _output: Any = None
    error: BaseException | None = None  # why its stages stopped, once they have
    index = -1  # its position in manager.records (-1: hidden, or no manager)
    combo_hash: str | None = None  # an aggregate's hash, once one ran on it

    def __init__(
        self, manager: RecordManager | None, params: ExperimentParameters | None, hide: bool = False
    ) -> None:
        if params is not None and not isinstance(params, ExperimentParameters):
            raise TypeError(
                f"Record params must be an ExperimentParameters instance or None, got "
                f"{type(params).__name__}; subclass ExperimentParameters as a @dataclass"
            )
        self.manager: RecordManager | None = manager
        self.params = params
        self.stages: list[str] = []
        planner = self._planner = _planning.get()
        if params is not None:
            params.hash = parameter_set_hash(params)
        if manager is not None and not hide:
            manager._register(self)
        # While its experiment is planned, no stage has run: the state can only be written.
        self.state: dict[str, Any] = State() if planner is None else WriteOnlyState()
        if planner is not None:
            planner.add_record(self, hide)

    @property
    def name(self) -> str:
        """The parameter set's name, or a label for a record without parameters."""
        if self.params is not None:
            return self.params.name
        return f"record #{self.index}" if self.index >= 0 else "record without params"

    @property
    def output(self) -> Any:
        """What the last stage returned (read from ``state`` when it is stored there)."""
        if isinstance(self._output, OutputOf):
            return self._output.read(self.state)
        return self._output

    @output.setter
    def output(self, value: Any) -> None:
        self._output = value

    @property
    def hash(self) -> str:
        """The hash cache entries are filed under: an aggregate's combined hash or the params'."""
        if self.combo_hash is not None:
            return self.combo_hash
        if self.params is None or self.params.hash is None:
            return "None"
        return self.params.hash

    @property
    def is_aggregate(self) -> bool:
        """Whether an aggregate ran on this record (its hash is then the combined one)."""
        return self.combo_hash is not None

    def get_hash(self) -> str:
        """curifactory's name for :attr:`hash`."""
        return self.hash

    @property
    def may_use_cache(self) -> bool:
        """Whether cached outputs may be loaded for this record: it has parameters, or an
        aggregate over some records ran on it (as in curifactory: a record without
        parameters could be anything, so it always computes; its outputs are still saved)."""
        return self.params is not None or self._aggregated

    def report(self, reportable: Reportable) -> None:
        """Show ``reportable`` in the run's report, under the stage running (in a worker
        too: it comes back with the record, and is cached with the stage's outputs).

        >>> record.report(JsonReporter({"accuracy": accuracy}, name="scores"))
        """
        report_on(self, reportable)

    @property
    def reportables(self) -> list[Reportable]:
        """What this record's stages reported, in the order the stages ran."""
        return [item for listed in self._reportables.values() for item in listed]

    def make_copy(
        self,
        param_set: ExperimentParameters | None = None,
        add_to_manager: bool = True,
        *,
        params: ExperimentParameters | None = None,
    ) -> Record:
        """A new record with a deep copy of this one's state, for branching an experiment:
        with the same parameters unless ``param_set`` (or ``params``) is given, listed in
        the manager unless ``add_to_manager=False``. Inside ``manager.run`` the copy is made
        when the stages before it have run.

        >>> record = get_initial_value(Record(manager, MyParams(name="default")))
        >>> branch = record.make_copy(MyParams(name="branch", some_scalar_multiplier=3.0))
        """
        copy = Record(self.manager, param_set or params or self.params, hide=not add_to_manager)
        copy.input_records = [self]
        if self._planner is not None:
            self._planner.add_copy(self, copy)
        else:
            copy_state(self, copy)
        return copy

    def get_path(
        self,
        obj_name: str,
        subdir: str | None = None,
        prefix: str | None = None,
        stage_name: str | None = None,
        track: bool = True,
    ) -> str:
        """A path in the cache directory for a file a stage writes itself, named like the
        cachers' files, ``{prefix}_{hash}_{stage}_{obj_name}`` (the directory is made; a
        dry run gets a temporary directory instead, so nothing is written to the project).
        A string, as curifactory's, so a value holding it reads the same when cached.

        >>> @stage(outputs=["model_path"])
        ... def train(record):
        ...     path = record.get_path("model.bin")
        ...     return path
        >>> train(Record(manager, MyParams(name="default"))).state["model_path"]
        '.../data/cache/notebook_example_0_fbfbde1db878403f89d2b0b9cdf4fbbd_train_model.bin'
        """
        return str(stage_file(self, obj_name, subdir, prefix, stage_name))

    def get_dir(
        self,
        dir_name_suffix: str,
        subdir: str | None = None,
        prefix: str | None = None,
        stage_name: str | None = None,
        track: bool = True,
    ) -> str:
        """Like :meth:`get_path`, for a directory, which is made."""
        path = stage_file(self, dir_name_suffix, subdir, prefix, stage_name)
        path.mkdir(parents=True, exist_ok=True)
        return str(path)

    def __repr__(self) -> str:
        return f"<Record {self.name!r} stages={self.stages}>"

    def __reduce__(self) -> tuple[Any, ...]:
        # Only what a worker needs travels: never the manager, the planner or other records.
        state = dict(dict.items(self.state))
        return (
            _rebuilt_record,
            (
                self.params,
                state,
                self.stages,
                self._output,
                self.error,
                self.index,
                self.combo_hash,
                self._aggregated,
                self._inputs_overwrite,
                self._provenance,
            ),
        )


def _rebuilt_record(
    params: ExperimentParameters | None,
    state: dict[str, Any],
    stages: list[str],
    output: Any,
    error: BaseException | None,
    index: int,
    combo_hash: str | None,
    aggregated: bool,
    inputs_overwrite: bool,
    provenance: Provenance,
) -> Record:
    record = Record.__new__(Record)
    record.manager = record._planner = None
    record.params, record.state, record.stages = params, State(state), stages
    record._output, record.error, record.index, record.combo_hash = output, error, index, combo_hash
    record._provenance, record._aggregated, record._inputs_overwrite = (
        provenance,
        aggregated,
        inputs_overwrite,
    )
    return record


def stage_file(
    record: Record, obj_name: str, subdir: str | None, prefix: str | None, stage_name: str | None
) -> Path:
    """``{cache dir}[/subdir]/{prefix}_{hash}_{stage}_{obj_name}``: where a stage's own file
    goes, its directory made. The stage is the one running, else the record's last one."""
    running = record._running
    manager = record.manager
    cache = running[1] if running is not None else (manager.cache if manager else None)
    if stage_name is None:
        stage_name = running[0] if running is not None else (record.stages or [""])[-1]
    if cache is not None:
        directory, default_prefix = cache.directory, cache.prefix
    else:  # dry: nothing may be written to the project
        directory, default_prefix = _dry_directory(), (manager.name if manager else "dry")
    if subdir:
        directory = directory / subdir
    directory.mkdir(parents=True, exist_ok=True)
    return directory / f"{prefix or default_prefix}_{record.hash}_{stage_name}_{obj_name}"


@functools.cache
def _dry_directory() -> Path:
    """Where a dry run's stages write their own files: one temporary directory per process,
    removed when it exits (cached: made on first use only)."""
    directory = Path(tempfile.mkdtemp(prefix=f"parafactory-dry-{os.getpid()}-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    return directory


def copy_state(original: Record, copy: Record) -> None:
    """Give ``copy`` a deep copy of ``original``'s state (what is on disk stays unloaded)."""
    copy.state = State(copy_module.deepcopy(dict(dict.items(original.state))))
    copy_provenance(original, copy)


def copy_provenance(original: Record, copy: Record) -> None:
    """``copy``'s state comes from ``original``'s: so does the code that made it."""
    copy._provenance = original._provenance


class OutputOf(NamedTuple):
    """``record.output`` when the last stage's return value is its outputs in ``state``.

    Keeping a reference instead of the value means a large output travels from a
    worker once (in the state), and a lazy one stays on disk until read. (A named
    tuple: one is made per stage call, and it travels back with every result.)
    """

    keys: tuple[str, ...]
    several: bool = False

    def read(self, state: dict[str, Any]) -> Any:
        if not self.several:
            return state[self.keys[0]]
        return tuple(state[key] for key in self.keys)


class State(dict[Any, Any]):
    """``record.state``: a dict whose artifacts kept on disk load when they are first read.

    Every way of reading it (``[]``, ``get``, ``dict(state)``, ``{**state}``, ``copy``,
    ``items``, ``values``, ``pop``, iteration with lookups, ``==``) gives the values, on a
    first run and on a cached rerun alike: all of them go through :meth:`__getitem__`.
    Outputs declared ``Lazy`` stay unloaded until read, and when the state is printed.
    ``loaded`` keeps the artifact each loaded key came from, so a worker sends back the
    small artifact, not the value the parent can load itself.
    """

    loaded: dict[Any, Artifact] = {}  # shared empty default; each state gets its own on a load

    def __getitem__(self, key: Any) -> Any:
        value = dict.__getitem__(self, key)
        if isinstance(value, Artifact):
            if not self.loaded:
                self.loaded = {}
            self.loaded[key] = value
            value = value.load()
            dict.__setitem__(self, key, value)
        return value

    def __setitem__(self, key: Any, value: Any) -> None:
        if key in self.loaded:
            del self.loaded[key]
        dict.__setitem__(self, key, value)

    def __delitem__(self, key: Any) -> None:
        if key in self.loaded:
            del self.loaded[key]
        dict.__delitem__(self, key)

    def __iter__(self) -> Iterator[Any]:
        # Defined (not inherited) so that dict(state), {**state} and dict.update(state)
        # take the slow path, which reads each value through __getitem__.
        return dict.__iter__(self)

    def get(self, key: Any, default: Any = None) -> Any:
        return self[key] if key in self else default

    def values(self) -> list[Any]:  # type: ignore[override]
        return [self[key] for key in self]

    def items(self) -> list[tuple[Any, Any]]:  # type: ignore[override]
        return [(key, self[key]) for key in self]

    def pop(self, key: Any, *default: Any) -> Any:
        if key not in self and default:
            return default[0]
        value = self[key]  # a KeyError here, with no default, is pop's own
        del self[key]
        return value

    def popitem(self) -> tuple[Any, Any]:
        key = next(reversed(dict.keys(self)))  # a KeyError on an empty state, as dict's
        return key, self.pop(key)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    def update(self, *others: Any, **values: Any) -> None:
        if not self.loaded:  # nothing to forget: the C update (a State given reads its values)
            dict.update(self, *others, **values)
            return
        for key, value in dict(*others, **values).items():
            self[key] = value

    def copy(self) -> State:
        """A shallow copy; what is still on disk stays unloaded in it until read."""
        return State(dict(dict.items(self)))

    def __or__(self, other: Any) -> State:
        if not isinstance(other, dict):
            return NotImplemented
        merged = self.copy()
        merged.update(other)
        return merged

    def __ror__(self, other: Any) -> dict[Any, Any]:
        if not isinstance(other, dict):
            return NotImplemented
        return {**other, **self}

    def __ior__(self, other: Any) -> State:
        self.update(other)
        return self

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, dict):
            return NotImplemented
        return dict(self.items()) == dict(other.items())

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    __hash__ = None

    def __reduce__(self) -> tuple[Any, ...]:
        return (State, (dict(dict.items(self)),))  # artifacts travel unloaded

    def __repr__(self) -> str:
        return repr({key: self._shown(key) for key in self})

    def _shown(self, key: Any) -> Any:
        value = dict.__getitem__(self, key)
        return value if isinstance(value, Artifact) and value.lazy else self[key]


class WriteOnlyState(dict[str, Any]):
    """``record.state`` while planning: values may be set, but reading them is an error."""

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise PlanningStateError(
            "record.state cannot be read while manager.run is planning the experiment: "
            "stages have not run yet. Move the logic that reads state into a @stage or "
            "@aggregate function."
        )

    __getitem__ = get = __contains__ = keys = values = items = _refuse
    __len__ = __repr__ = __eq__ = __ne__ = pop = setdefault = copy = _refuse

    def __iter__(self) -> Iterator[str]:
        return self._refuse()  # type: ignore[no-any-return]

    def unlock(self) -> None:
        """Make this state an ordinary readable :class:`State`, in place (planning makes
        one per record: no copies)."""
        object.__setattr__(self, "__class__", State)
