"""The four components, eagerly, as in curifactory's "basic components" notebook.

Run it with ``python examples/basic_components.py``; it prints the notebook's six lines.
"""

from dataclasses import dataclass

from parafactory import ArtifactManager, ExperimentParameters, Record, aggregate, stage

manager = ArtifactManager("notebook_example_0", dry=True)


@dataclass
class MyParams(ExperimentParameters):
    some_scalar_multiplier: float = 1.0


default_params = MyParams(name="default")
doubled_params = MyParams(name="doubled", some_scalar_multiplier=2.0)

r0 = Record(manager, default_params)
r1 = Record(manager, doubled_params)

print(r0.state, r0.params)
print(r1.state, r1.params)


@stage(inputs=None, outputs=["initial_value"])
def get_initial_value(record):
    my_value = 5
    return my_value * record.params.some_scalar_multiplier


r0 = get_initial_value(r0)
r1 = get_initial_value(r1)
print(r0.state, r1.state)


@stage(inputs=["initial_value"], outputs=["final_value"])
def multiply_again(record, initial_value):
    return initial_value * record.params.some_scalar_multiplier


r1 = multiply_again(r1)
print(r1.state)

r2 = Record(manager, MyParams(name="uber-double", some_scalar_multiplier=4.0))
r2 = multiply_again(get_initial_value(r2))
print(r2.state, r2.params)


@aggregate(inputs=["final_value"], outputs=["all_final_values", "maximum_value"])
def find_maximum_final_value(record, records, final_value: dict[Record, float]):
    all_vals = {}
    for r, value in final_value.items():
        all_vals[r.params.name] = value

    maximum = max(all_vals.values())
    return all_vals, maximum


final_record = Record(manager, None)
final_record = find_maximum_final_value(final_record, [r0, r1, r2])
print(final_record.state)
