from curifactory_examples.params.basic import Args


def get_params():
    return [
        Args(name="test2", starting_data=[1, 2, 3]),
        Args(name="test3", starting_data=[2, 3, 4]),
    ]
