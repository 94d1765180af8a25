"""``parafactory run``, ``plan`` and ``ls``: each returns the command's exit status.

A run goes through ``manager.run`` like any script's; around it the command turns how
the run ended into an exit status (0 all records succeeded, 1 some failed, 130 Ctrl-C,
128 + N for signal N), writes the report whatever happened, and ends with one line: the
summary and the report's path.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any

from .._errors import BackendUnavailableError, StageFailedError
from .._manager import ArtifactManager, garbage_collection_paused
from .._model.cache import ListedCache
from .._model.parameters import ExperimentParameters
from .._run.cpus import resolve_n_jobs
from . import console, preview, project
from .overrides import expand, parse_override
from .selection import select

INTERRUPTED = 130  # as a shell reports a program Ctrl-C stopped


def run(args: argparse.Namespace) -> int:
    """Run the sweep; the exit status says how it ended."""
    experiment, param_sets = _sweep(args)
    manager = ArtifactManager(
        args.name or _short_name(experiment),
        root=Path(args.root).absolute(),  # the same place for workers on other machines
        dry=args.dry,
        overwrite=args.overwrite,
        overwrite_stages=args.overwrite_stages,
        log_level=getattr(logging, args.log_level),
        console_log=not args.quiet,
        notes=args.notes,
        report=not args.no_report,
    )
    with manager:
        status = _run_sweep(manager, experiment, param_sets, args)
        status = status or int(any(record.error is not None for record in manager.records))
    report = manager.report_path
    summary = (manager.run_summary or "no record ran").splitlines()[0].rstrip(":")
    console.say(f"{manager.name}: {summary}" + (f"; report: {report}" if report else ""))
    return status


def plan(args: argparse.Namespace) -> int:
    """Print what a run would load and compute, and why; runs nothing, and writes nothing
    but the cache's index of entries (see ``entry_index``)."""
    with garbage_collection_paused():  # what it makes lives until it prints
        return _plan(args)


def _plan(args: argparse.Namespace) -> int:
    experiment, param_sets = _sweep(args)
    manager = ArtifactManager(
        args.name or _short_name(experiment),
        root=Path(args.root).absolute(),  # the same place for workers on other machines
        dry=True,  # no run number taken, no log file
        overwrite=args.overwrite,
        overwrite_stages=args.overwrite_stages,
        console_log=False,
    )
    # dry, the manager would not read the cache
    cache = ListedCache.of(manager.cache_settings(), check_files=args.check_files)
    outlooks = preview.foresee_plan(manager.plan(experiment.run, param_sets), cache)
    cache.keep_index()
    console.say_lines(preview.render(outlooks, hashes=args.hashes))
    console.say(preview.totals(outlooks))
    # Records and their manager refer to each other: let them go now, by reference count,
    # rather than to the collector at exit (a quarter of a second for 100,000 records).
    manager.records.clear()
    return 0


def ls(args: argparse.Namespace) -> int:
    """List the experiments and parameter files of the project in the working directory."""
    for folder, names in project.listing(Path.cwd()).items():
        console.say(f"{folder}/: {', '.join(names) if names else '(none)'}")
    return 0


def _sweep(args: argparse.Namespace) -> tuple[ModuleType, list[ExperimentParameters]]:
    """The experiment module and its parameter sets: chosen, then overridden."""
    sets = [parse_override("--set", text) for text in args.sets]
    grids = [parse_override("--grid", text) for text in args.grids]
    experiment = project.load_experiment(args.experiment)
    param_sets = project.load_param_sets(args.params, experiment)
    return experiment, expand(select(param_sets, args.names, args.indices), sets, grids)


def _run_sweep(
    manager: ArtifactManager,
    experiment: ModuleType,
    param_sets: list[ExperimentParameters],
    args: argparse.Namespace,
) -> int:
    """``manager.run`` with the command's options; how it ended, as an exit status."""
    try:
        with _backend(args) as (backend, client):
            manager.run(
                experiment.run,
                param_sets,
                n_jobs=args.jobs,
                backend=backend,
                client=client,
                errors=args.errors,
                progress=False if args.quiet else None,
            )
    except KeyboardInterrupt:
        return INTERRUPTED
    except SystemExit as stop:  # SIGTERM or SIGHUP, after the run kept what finished
        return stop.code if isinstance(stop.code, int) else 1
    except StageFailedError as error:  # the run log leaves it to whoever catches it
        if not args.quiet:  # the message once, under the stage's traceback
            where = f"stage {error.stage_name!r} failed on record {error.record_name!r}:"
            print(where, file=sys.stderr)
            traceback.print_exception(error.__cause__ or error, file=sys.stderr, chain=False)
        return 1
    return 0


@contextlib.contextmanager
def _backend(args: argparse.Namespace) -> Iterator[tuple[str | None, Any]]:
    """The backend to name, and the dask client to run on: the scheduler at
    ``--scheduler``, or with ``--backend dask`` alone a local cluster of ``--jobs``
    single-threaded worker processes (closed after the run)."""
    if args.scheduler is None and args.backend != "dask":
        yield args.backend, None
        return
    try:
        import distributed
    except ImportError as error:
        raise BackendUnavailableError(
            "--backend dask and --scheduler need dask's distributed package: "
            "pip install 'parafactory[dask]'"
        ) from error
    connect: Any = distributed.Client  # untyped
    if args.scheduler is not None:
        client = connect(args.scheduler)
    else:
        client = connect(n_workers=resolve_n_jobs(args.jobs), threads_per_worker=1)
    with client:
        yield "dask", client


def _short_name(experiment: ModuleType) -> str:
    return experiment.__name__.rpartition(".")[2]


def stop_signals_exit() -> None:
    """SIGTERM and SIGHUP outside a run (while loading, planning, reporting) end the
    command as they do during one: with ``SystemExit(128 + signal)``."""

    def exit_with_status(signum: int, frame: FrameType | None) -> None:
        sys.exit(128 + signum)

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, exit_with_status)
