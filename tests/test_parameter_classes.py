"""Parameter classes must be dataclasses of their own; parameter-set names must be unique.

A subclass of ``ExperimentParameters`` (or of a dataclass parameter class) without its
own ``@dataclass`` is refused with ``ParameterClassError``: its fields would not count,
so it would be hashed, and cached, as its parent. Two different parameter sets sharing
a name in one ``map``/``run`` are refused with ``PlanError`` before anything runs.
"""

from __future__ import annotations

import dataclasses
import hashlib

import pytest

import parafactory
from parafactory import ExperimentParameters, ParameterClassError, PlanError, Record
from state_stages import Item, emit, emit_twice_on_one_set, items, marker_count

pytestmark = pytest.mark.timeout(120)


@dataclasses.dataclass
class Base(ExperimentParameters):
    alpha: int = 0


class PlainSubclass(ExperimentParameters):  # no @dataclass
    alpha: int = 0


class AddsField(Base):  # no @dataclass
    beta: int = 0


class AddsNothing(Base):  # no @dataclass
    pass


class AddsMethod(Base):  # no @dataclass
    def doubled(self) -> int:
        return 2 * self.alpha


def assert_asks_for_dataclass(error: ParameterClassError, cls: type) -> None:
    message = str(error)
    assert "@dataclass" in message, message
    assert cls.__name__ in message, message


def curifactory_hash(fields: dict) -> str:
    """curifactory's hash, worked out here: md5 of ``f"{field}{value!r}"`` per field,
    summed as integers, in hex."""
    digests = (hashlib.md5(f"{k}{v!r}".encode()).hexdigest() for k, v in fields.items())
    return f"{sum(int(d, 16) for d in digests):x}"


def test_error_classes_are_public():
    assert {"ParameterClassError", "PlanError"} <= set(parafactory.__all__)
    assert issubclass(ParameterClassError, parafactory.ParafactoryError)
    assert issubclass(PlanError, parafactory.ParafactoryError)


# -- classes without their own @dataclass ----------------------------------------------------------


def test_plain_subclass_given_its_own_field_asks_for_dataclass():
    with pytest.raises(ParameterClassError) as excinfo:
        PlainSubclass(name="p", alpha=3)
    assert "unexpected keyword" not in str(excinfo.value)
    assert_asks_for_dataclass(excinfo.value, PlainSubclass)


def test_plain_subclass_without_arguments_is_refused():
    with pytest.raises(ParameterClassError) as excinfo:
        PlainSubclass()
    assert_asks_for_dataclass(excinfo.value, PlainSubclass)


@pytest.mark.parametrize(
    ("cls", "kwargs"),
    [
        (AddsField, {"name": "p", "alpha": 1, "beta": 5}),
        (AddsField, {"name": "p", "alpha": 1}),
        (AddsNothing, {"name": "p", "alpha": 1}),
        (AddsMethod, {"name": "p", "alpha": 1}),
    ],
    ids=["adds-field-given", "adds-field-default", "adds-nothing", "adds-method"],
)
def test_subclass_of_a_dataclass_parameter_class_without_dataclass_is_refused(cls, kwargs):
    with pytest.raises(ParameterClassError) as excinfo:
        cls(**kwargs)
    assert_asks_for_dataclass(excinfo.value, cls)


def test_a_subclass_never_shares_its_parents_hash_or_cache(make_manager):
    """``AddsField(alpha=1, beta=5)`` would hash as ``Base(alpha=1)`` if ``beta`` did not
    count: the parent's record is made, the subclass is refused at every turn."""
    manager = make_manager("classes", dry=True)
    parent = Record(manager, Base(name="parent", alpha=1))
    assert parent.params.hash == curifactory_hash({"alpha": 1})

    with pytest.raises(ParameterClassError):
        Record(manager, AddsField(name="child", alpha=1, beta=5))
    # Even an instance made without calling the class is refused, never hashed.
    sneaked = object.__new__(AddsField)
    sneaked.__dict__.update(
        name="child", alpha=1, beta=5, hash=None, overwrite=False, hash_representations={}
    )
    with pytest.raises(ParameterClassError):
        Record(manager, sneaked)
    assert [r.name for r in manager.records] == ["parent"]


def test_a_dataclass_subclass_counts_its_own_fields(make_manager):
    """The fix the error asks for works: with @dataclass the new field counts."""

    @dataclasses.dataclass
    class WithBeta(Base):
        beta: int = 0

    manager = make_manager("classes", dry=True)
    child = Record(manager, WithBeta(name="child", alpha=1, beta=5))
    parent = Record(manager, Base(name="parent", alpha=1))

    assert child.params.hash == curifactory_hash({"alpha": 1, "beta": 5})
    assert parent.params.hash == curifactory_hash({"alpha": 1})


# -- parameter sets sharing a name -----------------------------------------------------------------


def twins(markers) -> list[Item]:
    """A uniquely named set first, then two different sets both named ``twin``."""
    return items(markers, ("alone", 0), ("twin", 1), ("twin", 2))


def duplicate_names_experiment(param_sets, manager):
    for params in param_sets:
        emit(Record(manager, params))


@pytest.mark.parametrize("entry", ["map", "run"])
def test_two_parameter_sets_sharing_a_name_are_refused_before_anything_runs(
    make_manager, backend, tmp_path, entry
):
    manager = make_manager("classes")
    markers = tmp_path / "markers"
    earlier = emit(Record(manager, items(markers, ("earlier", 9))[0]))
    executed_before = marker_count(markers)

    with pytest.raises(PlanError) as excinfo:
        if entry == "map":
            manager.map(twins(markers), [emit], progress=False, **backend)
        else:
            manager.run(duplicate_names_experiment, twins(markers), progress=False, **backend)

    assert "'twin'" in str(excinfo.value)
    assert any("'twin'" in problem for problem in excinfo.value.problems)
    assert "'alone'" not in str(excinfo.value)
    assert marker_count(markers) == executed_before == 1  # nothing of the refused run ran
    assert manager.records == [earlier]


@pytest.mark.parametrize("entry", ["map", "run"])
def test_one_parameter_set_used_for_two_records_is_allowed(make_manager, tmp_path, entry):
    manager = make_manager("classes")
    shared, other = items(tmp_path / "markers", ("shared", 4), ("other", 6))

    if entry == "map":
        records = manager.map([shared, other, shared], [emit], n_jobs=2, progress=False)
        names = ["shared", "other", "shared"]
    else:
        records = manager.run(emit_twice_on_one_set, [shared, other], n_jobs=2, progress=False)
        names = ["shared", "shared", "other", "other"]

    assert [r.name for r in records] == names
    assert [r.state["value"] for r in records] == [{"shared": 4, "other": 6}[n] for n in names]
    assert all(r.params is (shared if r.name == "shared" else other) for r in records)
    assert manager.records == records
