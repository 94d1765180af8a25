"""The command line's grammar: ``parafactory run|plan|ls`` and their options."""

from __future__ import annotations

import argparse

from .. import __version__

DESCRIPTION = """\
Run curifactory-style experiments: EXPERIMENT is a module of experiments/ holding
run(param_sets, manager), a dotted module or a .py file; each PARAMS likewise holds
get_params(). Exit status: 0 all records succeeded, 1 some failed, 2 usage error,
130 Ctrl-C, 128+N signal N (SIGTERM, SIGHUP); what finished is kept in every case."""


def parser() -> argparse.ArgumentParser:
    """``parafactory`` with its three commands."""
    top = argparse.ArgumentParser(prog="parafactory", description=DESCRIPTION)
    top.add_argument("--version", action="version", version=f"parafactory {__version__}")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sweep = _sweep_options()
    run = commands.add_parser(
        "run", parents=[sweep, _run_options()], help="run an experiment's parameter sweep"
    )
    plan = commands.add_parser(
        "plan", parents=[sweep], help="show what a run would load from cache or compute, and why"
    )
    plan.add_argument("--hashes", action="store_true", help="show each record's parameter hash")
    plan.add_argument(
        "--check-files",
        action="store_true",
        help="read each cache entry and check its files, rather than the cache's index: "
        "also foresees files changed in place since they were written (which the run "
        "finds and recomputes), at some 50 µs per stage call",
    )
    ls = commands.add_parser("ls", help="list the experiments and parameter files found here")
    for command in (run, plan, ls):
        command.set_defaults(grammar=command)  # whose usage a usage error shows
    return top


def _sweep_options() -> argparse.ArgumentParser:
    """What ``run`` and ``plan`` share: which experiment, which parameter sets, the cache."""
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument("experiment", metavar="EXPERIMENT")
    chosen = options.add_argument_group("parameter sets")
    chosen.add_argument(
        "-p",
        "--params",
        nargs="+",
        action="extend",
        default=[],
        metavar="PARAMS",
        help="parameter files whose get_params() lists are concatenated (default: the "
        "experiment's own get_params())",
    )
    chosen.add_argument(
        "--names", nargs="+", metavar="NAME", help="only the parameter sets with these names"
    )
    chosen.add_argument(
        "--indices",
        metavar="LIST",
        help="only the parameter sets at these positions, e.g. 3-7,9 (3-7: 3 to 6)",
    )
    chosen.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="set a field of every parameter set (a Python literal, else a string)",
    )
    chosen.add_argument(
        "--grid",
        dest="grids",
        action="append",
        default=[],
        metavar="FIELD=V1,V2",
        help="sweep a field over values: repeated, the cartesian product",
    )
    files = options.add_argument_group("files and cache")
    files.add_argument("--root", default=".", metavar="DIR", help="where data/, logs/, reports/ go")
    files.add_argument(
        "--name",
        metavar="PREFIX",
        help="the run's name, prefix of its cache files (default: the experiment's module name)",
    )
    files.add_argument("--overwrite", action="store_true", help="recompute every cached stage")
    files.add_argument(
        "--overwrite-stage",
        dest="overwrite_stages",
        action="append",
        default=[],
        metavar="NAME",
        help="recompute this stage and what reads it (repeatable)",
    )
    return options


def _run_options() -> argparse.ArgumentParser:
    """What only ``run`` takes: how to run, what to say, what to write."""
    options = argparse.ArgumentParser(add_help=False)
    running = options.add_argument_group("running")
    running.add_argument(
        "-j",
        "--jobs",
        type=int,
        metavar="N",
        help="worker processes (default: the CPUs this process may use: affinity, cgroup "
        "quota, Slurm; PARAFACTORY_N_JOBS overrides); 1 runs in this process",
    )
    running.add_argument("--backend", choices=["loky", "dask"], help="default: loky")
    running.add_argument(
        "--scheduler", metavar="ADDRESS", help="a dask scheduler's address (implies dask)"
    )
    running.add_argument(
        "--errors",
        choices=["raise", "continue"],
        default="raise",
        help="raise: stop at the first failure; continue: run everything that can run",
    )
    running.add_argument("--dry", action="store_true", help="write nothing to disk")
    shown = options.add_argument_group("output")
    shown.add_argument("--notes", metavar="TEXT", help="what this run is for, kept in its report")
    shown.add_argument("--no-report", action="store_true", help="write no report")
    shown.add_argument(
        "-q", "--quiet", action="store_true", help="no progress and no log lines on the console"
    )
    shown.add_argument(
        "--log-level",
        default="INFO",
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="default: INFO",
    )
    return options
