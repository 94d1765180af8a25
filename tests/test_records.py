"""Records: registration in the manager, parameter checks and pickling."""

import dataclasses
import pickle

import pytest

from parafactory import ExperimentParameters, Record, stage


@dataclasses.dataclass
class Params(ExperimentParameters):
    value: int = 0


@dataclasses.dataclass
class NotParams:
    name: str = "x"


@pytest.fixture
def manager(make_manager):
    return make_manager("records", dry=True)


@stage(inputs=None, outputs=["data"])
def make_data(record):
    return {"values": list(range(record.params.value))}


def test_record_pickles_without_manager_or_other_records(manager):
    Record(manager, Params(name="some-other-record", value=1))
    record = make_data(Record(manager, Params(name="mine", value=3)))
    data = pickle.dumps(record)
    assert b"some-other-record" not in data
    loaded = pickle.loads(data)
    assert loaded.manager is None
    assert loaded.params == record.params
    assert loaded.state == {"data": {"values": [0, 1, 2]}}
    assert loaded.stages == ["make_data"]
    assert loaded.output == record.output


def test_hidden_record_stays_out_of_manager_records(manager):
    shown = Record(manager, Params(name="shown"))
    hidden = Record(manager, Params(name="hidden"), hide=True)
    assert manager.records == [shown]
    assert hidden.params.hash is not None
    assert make_data(hidden).state == {"data": {"values": []}}


@pytest.mark.parametrize("params", [{"name": "dict"}, NotParams(), "name"])
def test_params_must_be_experiment_parameters(manager, params):
    with pytest.raises(TypeError):
        Record(manager, params)
    assert manager.records == []
