"""Parameter hashes follow curifactory's algorithm; expected values come from hashlib here."""

import dataclasses
import hashlib

import pytest

from parafactory import ExperimentParameters, Record


def md5_int(text: str) -> int:
    return int(hashlib.md5(text.encode()).hexdigest(), 16)


def expected_hash(*parts: str) -> str:
    return f"{sum(md5_int(part) for part in parts):x}"


@pytest.fixture
def hash_of(make_manager):
    manager = make_manager("params", dry=True)
    return lambda params: Record(manager, params, hide=True).params.hash


@dataclasses.dataclass
class MyParams(ExperimentParameters):
    some_scalar_multiplier: float = 1.0


@dataclasses.dataclass
class Inner:
    x: int = 1
    label: str = "z"
    unused: object = None


@dataclasses.dataclass
class Mixed(ExperimentParameters):
    count: int = 3
    text: str = "abc"
    values: list = dataclasses.field(default_factory=lambda: [1, 2.5])
    optional: object = None
    inner: Inner | None = None
    fn: object = None


def module_function():
    return None


@pytest.mark.parametrize(
    ("name", "multiplier", "digest"),
    [
        ("default", 1.0, "fbfbde1db878403f89d2b0b9cdf4fbbd"),
        ("doubled", 2.0, "ab202296761d2052e9b6b0376b46785b"),
        ("uber-double", 4.0, "a4337711dc83557f076bccd2b015e2ad"),
    ],
)
def test_seed_hashes(hash_of, name, multiplier, digest):
    params = MyParams(name=name, some_scalar_multiplier=multiplier)
    assert hash_of(params) == digest
    assert params.hash == digest
    assert digest == expected_hash(f"some_scalar_multiplier{multiplier!r}")


def test_hash_sums_one_md5_per_field_of_its_repr(hash_of):
    assert hash_of(Mixed()) == expected_hash("count3", "text'abc'", "values[1, 2.5]")


def test_name_overwrite_and_none_values_do_not_count(hash_of):
    plain = hash_of(Mixed())
    assert hash_of(Mixed(name="other", overwrite=True, optional=None)) == plain
    assert hash_of(Mixed(optional=7)) == expected_hash(
        "count3", "text'abc'", "values[1, 2.5]", "optional7"
    )


def test_nested_dataclass_contributes_the_sum_of_its_fields(hash_of):
    params = Mixed(inner=Inner(x=5, label="q"))
    assert hash_of(params) == expected_hash(
        "count3", "text'abc'", "values[1, 2.5]", "x5", "label'q'"
    )


def test_callables_hash_by_qualname(hash_of):
    def local_function():
        return None

    assert hash_of(Mixed(fn=module_function)) == expected_hash(
        "count3", "text'abc'", "values[1, 2.5]", "fnmodule_function"
    )
    assert hash_of(Mixed(fn=local_function)) == expected_hash(
        "count3",
        "text'abc'",
        "values[1, 2.5]",
        "fntest_callables_hash_by_qualname.<locals>.local_function",
    )


def test_set_hash_functions_customises_and_excludes_fields(hash_of):
    params = Mixed()
    calls = []

    def describe(param_set, value):
        calls.append((param_set, value))
        return f"len={len(value)}"

    params.set_hash_functions(values=describe, text=None)
    assert hash_of(params) == expected_hash("count3", "valueslen=2")
    assert calls == [(params, [1, 2.5])]


def test_hash_function_returning_none_excludes_the_field_and_others_are_formatted_with_str(
    hash_of,
):
    params = Mixed()
    params.set_hash_functions(values=lambda param_set, value: None, count=lambda p, v: v * 2)
    assert hash_of(params) == expected_hash("count6", "text'abc'")


def test_a_custom_representation_never_stands_for_an_equal_plain_value(hash_of):
    custom = Mixed(text="x")
    custom.set_hash_functions(text=lambda param_set, value: "len=2")
    for _ in range(2):  # the second time, both digests are already known
        assert hash_of(Mixed(text="len=2")) == expected_hash(
            "count3", "text'len=2'", "values[1, 2.5]"
        )
        assert hash_of(custom) == expected_hash("count3", "textlen=2", "values[1, 2.5]")
        custom.hash = None


@dataclasses.dataclass
class Grid(ExperimentParameters):
    seed: int = 0
    rate: float = 0.1
    label: str = "a"


def test_hashes_stay_right_across_a_large_sweep_of_repeated_and_distinct_values(hash_of):
    # Sweeps repeat a few values per field and vary others: a first pass and a second,
    # reversed pass over thousands of distinct seeds must both give the reference hashes.
    sweep = [(seed, [0.1, -0.0, 0.0][seed % 3], "ab"[seed % 2]) for seed in range(6000)]
    for seed, rate, label in [*sweep, *reversed(sweep)]:
        expected = expected_hash(f"seed{seed}", f"rate{rate!r}", f"label{label!r}")
        assert hash_of(Grid(seed=seed, rate=rate, label=label)) == expected


def test_set_hash_functions_rejects_unknown_fields():
    with pytest.raises(ValueError, match="not_a_field"):
        Mixed().set_hash_functions(not_a_field=None)


def test_explicit_hash_is_kept(hash_of):
    assert hash_of(MyParams(name="given", hash="my-own-hash")) == "my-own-hash"
