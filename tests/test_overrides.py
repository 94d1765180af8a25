"""``--set`` and ``--grid`` applied to parameter sets (``parafactory run``/``plan``): every
combination, named after its overrides, made through the class's ``__init__``, with
dotted fields reaching into nested dataclasses and a later override winning."""

from __future__ import annotations

import dataclasses

import pytest

from parafactory import ExperimentParameters
from parafactory._cli.overrides import expand, parse_override
from parafactory._errors import CommandLineError


@dataclasses.dataclass
class Model:
    depth: int = 2
    width: float = 1.0


@dataclasses.dataclass
class Params(ExperimentParameters):
    lr: float = 0.1
    seed: int = 0
    model: Model = dataclasses.field(default_factory=Model)
    doubled_seed: int = dataclasses.field(init=False, default=0)

    def __post_init__(self) -> None:
        self.doubled_seed = 2 * self.seed


def grid(*texts: str) -> list:
    return [parse_override("--grid", text) for text in texts]


def sets(*texts: str) -> list:
    return [parse_override("--set", text) for text in texts]


def test_a_grid_is_every_combination_in_order_each_named_after_its_overrides():
    base = Params(name="base")
    expanded = expand([base], [], grid("lr=0.1,0.01", "seed=0,1,2"))
    assert [p.name for p in expanded] == [
        "base_lr=0.1_seed=0",
        "base_lr=0.1_seed=1",
        "base_lr=0.1_seed=2",
        "base_lr=0.01_seed=0",
        "base_lr=0.01_seed=1",
        "base_lr=0.01_seed=2",
    ]
    assert [(p.lr, p.seed) for p in expanded] == [
        (lr, seed) for lr in (0.1, 0.01) for seed in (0, 1, 2)
    ]
    assert base.lr == 0.1 and base.seed == 0 and base.name == "base"  # left as it was


def test_each_set_is_made_through_init_so_post_init_sees_the_new_values():
    expanded = expand([Params(name="base")], [], grid("seed=3,5"))
    assert [p.doubled_seed for p in expanded] == [6, 10]


def test_each_set_gets_a_hash_of_its_own_values_and_its_own_hash_functions():
    base = Params(name="base")
    base.set_hash_functions(lr=None)  # lr does not count in the hash
    base.params_hash()
    first, second = expand([base], [], grid("seed=1,2"))
    assert first.hash is None and second.hash is None  # computed afresh when used
    assert first.params_hash() != second.params_hash()
    assert first.hash_representations == {"lr": None}
    assert first.hash_representations is not base.hash_representations
    assert first.hash_representations is not second.hash_representations


def test_a_dotted_field_changes_a_copy_of_the_nested_dataclass():
    base = Params(name="base")
    deep, deeper = expand([base], [], grid("model.depth=4,8"))
    assert (deep.model.depth, deeper.model.depth) == (4, 8)
    assert deep.model.width == 1.0
    assert base.model.depth == 2 and deep.model is not base.model


def test_overrides_apply_in_order_a_later_one_winning():
    base = Params(name="base")
    # Dotted fields of one nested dataclass all count, --set's first and then the grid's.
    both = expand([base], sets("model.width=3", "model.depth=5"), grid("model.depth=7,8"))
    assert [(p.model.depth, p.model.width) for p in both] == [(7, 3.0), (8, 3.0)]
    assert both[0].name == "base_model.width=3_model.depth=5_model.depth=7"
    [last] = expand([base], sets("seed=1", "seed=2"), [])
    assert last.seed == 2 and last.name == "base_seed=1_seed=2"


def test_an_int_for_a_float_field_becomes_a_float():
    [params] = expand([Params(name="base")], sets("lr=1", "model.width=2"), [])
    assert type(params.lr) is float and type(params.model.width) is float


def test_every_base_set_is_expanded_with_its_own_values():
    expanded = expand([Params(name="a", lr=0.5), Params(name="b", seed=7)], [], grid("seed=1,2"))
    assert [(p.name, p.lr, p.seed) for p in expanded] == [
        ("a_seed=1", 0.5, 1),
        ("a_seed=2", 0.5, 2),
        ("b_seed=1", 0.1, 1),
        ("b_seed=2", 0.1, 2),
    ]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (grid("sed=1,2"), "Params has no field 'sed'"),
        (grid("doubled_seed=1"), "Params has no field 'doubled_seed'"),  # not an __init__ field
        (grid("seed=1,'x'"), "field 'seed' of Params is int, and 'x' is a str"),
        (grid("model.depth=2.5"), "field 'depth' of Model is int, and 2.5 is a float"),
        (grid("lr.x=1"), "field 'lr' is a float, not a dataclass"),
    ],
)
def test_a_wrong_field_or_value_is_refused_naming_the_field_and_the_class(override, message):
    with pytest.raises(CommandLineError, match=message):
        expand([Params(name="base")], [], override)
