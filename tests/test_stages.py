"""@stage: inputs from record.state, outputs back into it, clear errors."""

import dataclasses

import pytest

from parafactory import (
    ExperimentParameters,
    Record,
    StageDefinitionError,
    StageInputError,
    StageOutputError,
    stage,
)


@dataclasses.dataclass
class Params(ExperimentParameters):
    factor: float = 1.0


@pytest.fixture
def manager(make_manager):
    return make_manager("stages", dry=True)


@stage(inputs=None, outputs=["start"])
def get_start(record):
    return 5 * record.params.factor


@stage(inputs=["start"], outputs=["low", "high"])
def split(record, start):
    return start - 1, start + 1


@stage(inputs=["low", "high"], outputs=None)
def total(record, low, high, offset=0):
    return low + high + offset


def test_stages_chain_and_fill_state(manager):
    record = Record(manager, Params(name="chain", factor=2.0))
    returned = total(split(get_start(record)))
    assert returned is record
    assert record.state == {"start": 10.0, "low": 9.0, "high": 11.0}
    assert record.stages == ["get_start", "split", "total"]
    assert record.output == 20.0


def test_output_holds_last_return_even_with_several_outputs(manager):
    record = split(get_start(Record(manager, Params(name="tuple"))))
    assert record.output == (4.0, 6.0)


def test_extra_keyword_arguments_pass_through(manager):
    record = total(split(get_start(Record(manager, Params(name="kw")))), offset=100)
    assert record.output == 110.0
    assert "offset" not in record.state


def test_missing_input_names_stage_input_and_record(manager):
    record = Record(manager, Params(name="no-start"))
    with pytest.raises(StageInputError) as info:
        split(record)
    message = str(info.value)
    assert "split" in message and "start" in message and "no-start" in message
    assert record.stages == []


@pytest.mark.parametrize("returned", [(1, 2, 3), 7])
def test_wrong_output_count_names_stage_and_record(manager, returned):
    @stage(inputs=None, outputs=["a", "b"])
    def two_outputs(record):
        return returned

    with pytest.raises(StageOutputError) as info:
        two_outputs(Record(manager, Params(name="miscounted")))
    assert "two_outputs" in str(info.value) and "miscounted" in str(info.value)


def test_signature_lacking_an_input_fails_at_decoration():
    with pytest.raises(StageDefinitionError, match="value"):

        @stage(inputs=["value"], outputs=["out"])
        def forgets_value(record):
            return 1


def test_inputs_as_a_bare_string_fail_at_decoration():
    with pytest.raises(StageDefinitionError, match="single"):

        @stage(inputs="single", outputs=["out"])
        def takes_single(record, single):
            return single
