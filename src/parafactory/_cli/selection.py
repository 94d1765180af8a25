"""Choosing parameter sets by name (``--names``) or position (``--indices``)."""

from __future__ import annotations

from .._errors import CommandLineError, quoted_names
from .._model.parameters import ExperimentParameters


def select(
    param_sets: list[ExperimentParameters], names: list[str] | None, indices: str | None
) -> list[ExperimentParameters]:
    """The parameter sets named in ``names`` or at the positions ``indices`` lists (both:
    either), in their order; all of them when neither is given."""
    if names is None and indices is None:
        return param_sets
    wanted_names = set(names or ())
    unknown = wanted_names - {params.name for params in param_sets}
    if unknown:
        raise CommandLineError(
            f"--names: no parameter set is named {quoted_names(sorted(unknown))}; the "
            f"parameter files give {quoted_names([params.name for params in param_sets])}"
        )
    positions = parse_indices(indices, len(param_sets)) if indices is not None else set()
    return [
        params
        for position, params in enumerate(param_sets)
        if position in positions or params.name in wanted_names
    ]


def parse_indices(text: str, count: int) -> set[int]:
    """``"3-7,9"`` as positions: ``a-b`` runs from ``a`` up to, not including, ``b`` (as
    curifactory's ``--indices``); every position must be below ``count``."""
    positions: set[int] = set()
    for part in text.replace(" ", ",").split(","):
        if part:
            positions.update(_range_of(part))
    beyond = sorted(position for position in positions if position >= count)
    if beyond:
        raise CommandLineError(
            f"--indices {text}: position {beyond[0]} is past the {count} parameter sets "
            f"(positions 0 to {count - 1})"
        )
    return positions


def _range_of(part: str) -> range:
    start, dash, end = part.partition("-")
    try:
        first = int(start)
        last = int(end) if dash else first + 1
    except ValueError:
        raise CommandLineError(
            f"--indices: {part!r} is not a position or a range such as 3-7"
        ) from None
    if first < 0 or last <= first:
        raise CommandLineError(f"--indices: {part!r} is an empty or negative range")
    return range(first, last)
