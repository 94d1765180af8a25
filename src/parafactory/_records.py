"""Records: one parameter set's state as it moves through stages.

A record pickles as its parameters and state alone, so it can travel to a
worker process; its link to the manager stays in the parent.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

from ._errors import PlanningStateError
from ._parameters import ExperimentParameters, parameter_set_hash


class _RecordKeeper(Protocol):
    """What a record needs of its manager: somewhere to register itself."""

    def _register(self, record: Record) -> None: ...


class Record:
    """The state of one parameter set in one run.

    Creating a record sets ``params.hash`` and adds the record to
    ``manager.records`` unless ``hide=True``. ``params`` may be ``None`` for a
    record that only aggregates others.

    >>> r0 = Record(manager, MyParams(name="default"))
    >>> r0.state, r0.params.hash
    ({}, 'fbfbde1db878403f89d2b0b9cdf4fbbd')
    """

    def __init__(
        self, manager: Any, params: ExperimentParameters | None, hide: bool = False
    ) -> None:
        if params is not None and not isinstance(params, ExperimentParameters):
            raise TypeError(
                f"Record params must be an ExperimentParameters instance or None, got "
                f"{type(params).__name__}; subclass ExperimentParameters as a @dataclass"
            )
        self.manager = manager
        self.params = params
        self.state: dict[str, Any] = {}
        self.output: Any = None
        self.stages: list[str] = []
        self.error: BaseException | None = None
        self.index = -1
        self._planner: Any = None
        if params is not None:
            params.hash = parameter_set_hash(params)
        if not hide:
            manager._register(self)

    @property
    def name(self) -> str:
        """The parameter set's name, or a label for a record without parameters."""
        if self.params is not None:
            return self.params.name
        return f"record #{self.index}" if self.index >= 0 else "record without params"

    def __repr__(self) -> str:
        return f"<Record {self.name!r} stages={self.stages}>"

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["manager"] = None
        state["_planner"] = None
        if isinstance(state["state"], WriteOnlyState):
            state["state"] = state["state"].unlocked()
        return state


class WriteOnlyState(dict[str, Any]):
    """``record.state`` while planning: values may be set, but reading them is an error."""

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise PlanningStateError(
            "record.state cannot be read while manager.run is planning the experiment: "
            "stages have not run yet. Move the logic that reads state into a @stage or "
            "@aggregate function."
        )

    __getitem__ = get = __contains__ = keys = values = items = _refuse
    __len__ = __repr__ = pop = setdefault = copy = _refuse

    def __iter__(self) -> Iterator[str]:
        return self._refuse()  # type: ignore[no-any-return]

    def unlocked(self) -> dict[str, Any]:
        """A plain dict of what was written, for when planning ends."""
        return {key: dict.__getitem__(self, key) for key in dict.keys(self)}
