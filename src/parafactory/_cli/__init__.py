"""The ``parafactory`` command: run, preview and list curifactory-style experiments.

::

    arguments   the command line's grammar
    project     experiments/ and params/: finding and loading them
    selection   --names, --indices
    overrides   --set, --grid
    preview     what a run would load or compute, and why (``plan``)
    console     printing on stdout
    commands    run, plan, ls: each returns its exit status
"""

from __future__ import annotations

import argparse
import sys

from .._errors import CommandLineError
from . import commands
from .arguments import parser


def main(argv: list[str] | None = None) -> int:
    """Run the command in ``argv`` (``sys.argv[1:]`` by default); returns its exit status."""
    commands.stop_signals_exit()
    args = parser().parse_args(argv)
    command = {"run": commands.run, "plan": commands.plan, "ls": commands.ls}[args.command]
    try:
        return command(args)
    except CommandLineError as error:
        grammar: argparse.ArgumentParser = args.grammar
        grammar.error(str(error))  # exits with status 2, as argparse does
    except KeyboardInterrupt:  # Ctrl-C before or after the run
        return commands.INTERRUPTED


def console_script() -> None:
    """The ``parafactory`` console script."""
    sys.exit(main())
