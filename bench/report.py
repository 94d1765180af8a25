"""The issue's targets as ratios of the same run, and the markdown tables that show them."""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from .runners import PEERS, RUNNERS, SPAWNING_PEERS

Medians = Mapping[str, Mapping[str, float]]


@dataclasses.dataclass(frozen=True)
class Target:
    """One target: what was measured, its limit, and which way the limit goes."""

    name: str
    measured: float | None
    limit: float
    unit: str
    at_most: bool = True
    note: str = ""

    @property
    def verdict(self) -> str:
        """``pass``, ``miss``, or ``n/a`` when the figure was not measured."""
        if self.measured is None:
            return "n/a"
        ok = self.measured <= self.limit if self.at_most else self.measured >= self.limit
        return "pass" if ok else "miss"

    def as_dict(self) -> dict[str, Any]:
        """The target with its verdict, for the JSON file."""
        return {**dataclasses.asdict(self), "verdict": self.verdict}


def fastest_peer(
    row: Mapping[str, float], among: Sequence[str] = PEERS
) -> tuple[str, float] | None:
    """The peer with the least median wall time in a row, and that time."""
    peers = [(row[name], name) for name in among if name in row]
    if not peers:
        return None
    seconds, name = min(peers)
    return name, seconds


def _versus_peer(name: str, medians: Medians, row: str, limit: float) -> Target:
    """parafactory's wall time over the fastest peer's, in one row.

    When the fastest is ``mp.Pool`` (whose fork start skips the interpreter start and
    imports that loky's workers pay), the note gives the ratio to the fastest loky-based peer.
    """
    times = medians.get(row, {})
    best = fastest_peer(times)
    if best is None or "parafactory" not in times:
        return Target(name, None, limit, "×")
    note = f"fastest peer: {best[0]}"
    spawned = fastest_peer(times, among=SPAWNING_PEERS)
    if best[0] not in SPAWNING_PEERS and spawned is not None:
        note += f"; {times['parafactory'] / spawned[1]:.2f}× {spawned[0]}"
    return Target(name, times["parafactory"] / best[1], limit, "×", note=note)


def _versus_serial(name: str, medians: Medians, row: str, limit: float) -> Target:
    times = medians.get(row, {})
    if "parafactory" not in times or "serial" not in times:
        return Target(name, None, limit, "× serial")
    return Target(name, times["parafactory"] / times["serial"], limit, "× serial")


def _efficiency(medians: Medians, workers: int) -> Target:
    times = medians.get("W2 warm", {})
    name = f"W2 efficiency serial / ({workers} × wall)"
    if "parafactory" not in times or "serial" not in times:
        return Target(name, None, 0.90, "", at_most=False)
    measured = times["serial"] / (workers * times["parafactory"])
    return Target(name, measured, 0.90, "", at_most=False)


def _per_record(medians: Medians, records: int) -> Target:
    seconds = medians.get("W1 warm", {}).get("parafactory")
    measured = None if seconds is None else seconds / records * 1e6
    return Target("W1 warm, per record", measured, 20.0, "µs")


def _planning(scale: Mapping[str, Any]) -> Target:
    """Planning 100k records; from a smaller size, extrapolated per stage call."""
    sizes = scale.get("planning", [])
    if not sizes:
        return Target("planning 100k records × 2 stages", None, 1.0, "s")
    largest = max(sizes, key=lambda figure: figure["records"])
    measured = largest["us_per_stage_call"] * 2 * 100_000 / 1e6
    note = "" if largest["records"] == 100_000 else f"extrapolated from {largest['records']:,}"
    return Target("planning 100k records × 2 stages", measured, 1.0, "s", note=note)


def _plan_command(scale: Mapping[str, Any], cached: bool) -> Target:
    """``parafactory plan`` of 100k records, new or all cached; from a smaller size,
    extrapolated per record (the plan of one new record is the fixed cost, not scaled)."""
    name = f"parafactory plan, 100k {'cached' if cached else 'new'} records × 2 stages"
    figure = scale.get("plan_command_cached" if cached else "plan_command")
    if not figure:
        return Target(name, None, 2.0, "s")
    fixed = scale.get("plan_command", {}).get("one_record_seconds", 0.0)
    measured = fixed + (figure["median_seconds"] - fixed) * 100_000 / figure["records"]
    note = "" if figure["records"] == 100_000 else f"extrapolated from {figure['records']:,}"
    return Target(name, measured, 2.0, "s", note=note)


def _lazy_rss(scale: Mapping[str, Any]) -> Target:
    lazy = scale.get("rss", {}).get("lazy")
    measured = None if lazy is None else lazy["peak_rss_mb"]
    return Target("W3 parent peak RSS, lazy outputs", measured, 150.0, "MB")


def _report(scale: Mapping[str, Any]) -> Target:
    figure = scale.get("report")
    name = f"write_report of a {figure['records']:,}-record run" if figure else "write_report"
    return Target(name, figure and figure["median_seconds"], 2.0, "s")


def targets(
    medians: Medians, scale: Mapping[str, Any], workers: int, tiny_records: int
) -> list[Target]:
    """Every target of issues 4 and 5, measured in this run."""
    return [
        _versus_peer("W1 cold vs fastest peer", medians, "W1 cold", 1.5),
        _per_record(medians, tiny_records),
        _efficiency(medians, workers),
        _versus_serial("W3 vs serial", medians, "W3 warm", 1.3),
        _versus_peer("W4 vs fastest peer", medians, "W4 warm", 1.05),
        _versus_peer("W5 vs fastest peer", medians, "W5 warm", 1.05),
        _planning(scale),
        _plan_command(scale, cached=False),
        _plan_command(scale, cached=True),
        _lazy_rss(scale),
        _report(scale),
    ]


# -- markdown ------------------------------------------------------------------------------


def _seconds(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}×"


def wall_table(
    medians: Medians, titles: Mapping[str, str], spreads: Mapping[str, float | None]
) -> str:
    """Median wall seconds per workload and runner, parafactory's ratios, and the noise.

    The noise column is the largest (slowest − fastest) / median of any runner in the row.
    """
    names = [runner.name for runner in RUNNERS]
    lines = [
        "| workload | " + " | ".join(names) + " | pf / fastest peer | pf / serial | noise |",
        "|---|" + "---:|" * (len(names) + 3),
    ]
    for row, times in medians.items():
        best = fastest_peer(times)
        pf = times.get("parafactory")
        versus_peer = pf / best[1] if pf is not None and best else None
        versus_serial = pf / times["serial"] if pf is not None and "serial" in times else None
        cells = [_seconds(times.get(name)) for name in names]
        label = f"{row} ({titles.get(row.split()[0], '')})"
        peer_cell = _ratio(versus_peer) + (f" ({best[0]})" if best else "")
        spread = spreads.get(row)
        noise = "–" if spread is None else f"{spread:.0%}"
        lines.append(
            f"| {label} | "
            + " | ".join(cells)
            + f" | {peer_cell} | {_ratio(versus_serial)} | {noise} |"
        )
    return "\n".join(lines)


def _measured(target: Target) -> str:
    if target.measured is None:
        return "–"
    if target.unit.startswith("×"):
        return f"{target.measured:.2f}{target.unit}"
    return f"{target.measured:.3g} {target.unit}".strip()


def target_table(found: Sequence[Target]) -> str:
    """The targets with what was measured, the limit, and pass or miss."""
    lines = ["| target | measured | limit | result | note |", "|---|---:|---:|---|---|"]
    for target in found:
        sign = "≤" if target.at_most else "≥"
        limit = f"{sign} {target.limit:g}{target.unit if target.unit.startswith('×') else ''}"
        if not target.unit.startswith("×") and target.unit:
            limit += f" {target.unit}"
        lines.append(
            f"| {target.name} | {_measured(target)} | {limit} | {target.verdict} | {target.note} |"
        )
    return "\n".join(lines)


def scale_table(scale: Mapping[str, Any]) -> str:
    """Planning, run growth, the cached rerun and peak memory, one figure a line."""
    lines = ["| figure | value |", "|---|---|"]
    for figure in scale.get("planning", []):
        lines.append(
            f"| planning {figure['records']:,} records × 2 stages | "
            f"{figure['median_seconds']:.3f} s "
            f"({figure['us_per_stage_call']:.1f} µs per stage call) |"
        )
    command = scale.get("plan_command")
    if command:
        one = command.get("one_record_seconds")
        lines.append(
            f"| parafactory plan of {command['records']:,} new records × 2 stages "
            f"(process start to totals) | {command['median_seconds']:.3f} s"
            + (f" (1 record: {one:.3f} s) |" if one is not None else " |")
        )
    cached_plan = scale.get("plan_command_cached")
    if cached_plan:
        lines.append(
            f"| parafactory plan of {cached_plan['records']:,} records × 2 stages, all cached "
            f"| {cached_plan['median_seconds']:.3f} s "
            f"({cached_plan['us_per_stage_call']:.1f} µs per stage call) |"
        )
        if "checked_records" in cached_plan:
            lines.append(
                f"| the same, {cached_plan['checked_records']:,} records, `--check-files` "
                f"| {statistics.median(cached_plan['checked_seconds']):.3f} s "
                f"({cached_plan['checked_us_per_stage_call']:.1f} µs per stage call) |"
            )
    for figure in scale.get("growth", []):
        lines.append(
            f"| warm run of {figure['records']:,} tiny records | "
            f"{figure['median_seconds']:.3f} s ({figure['us_per_record']:.1f} µs per record) |"
        )
    cached = scale.get("cached_rerun")
    if cached:
        lines.append(
            f"| W1 fully cached rerun ({cached['records']:,} records) | "
            f"{cached['median_seconds']:.3f} s; stages executed: "
            f"{cached['stages_executed_rerunning']} (filling run: {cached['fill_seconds']:.2f} s, "
            f"{cached['stages_executed_filling']} executed) |"
        )
    report = scale.get("report")
    if report:
        lines.append(
            f"| write_report of a {report['records']:,}-record run | "
            f"{report['median_seconds']:.3f} s (page {report['page_kb']:.0f} kB; "
            f"{report['dense_lanes']} of {report['lanes']} timeline lanes as density strips) |"
        )
    for mode, figures in scale.get("rss", {}).items():
        lines.append(
            f"| W3 parent peak RSS, {mode} ({figures['records']} records) | "
            f"{figures['peak_rss_mb']:.0f} MB (before the run "
            f"{figures['rss_before_run_mb']:.0f} MB; run {figures['seconds']:.2f} s) |"
        )
    return "\n".join(lines)


def render(results: Mapping[str, Any]) -> str:
    """The whole markdown report of one bench run."""
    machine, versions, settings = results["machine"], results["versions"], results["settings"]
    reps = settings["reps"]
    header = [
        f"## parafactory bench ({'quick' if settings['quick'] else 'full'}), {results['date']}",
        "",
        f"Machine: {machine['usable_cpus']} usable CPUs ({machine['cpu_count']} in the machine), "
        f"{machine['platform']}, Python {machine['python']}; load average "
        f"{machine['load_before']} before, {machine['load_after']} after.",
        "Versions: " + ", ".join(f"{name} {version}" for name, version in versions.items()) + ".",
        f"Each figure is the median wall time in seconds of {_repetitions(reps)}"
        f", runners interleaved, all runners on {settings['workers']} workers. W1 cold starts each "
        "pool inside the timing; W1 warm is a second pass right after; W2–W5 run on warm pools. "
        f"One W2 stage: {settings['loops']:,} loops ≈ "
        f"{settings['stage_seconds'] * 1000:.0f} ms of CPU.",
    ]
    parts = [
        "\n".join(header),
        wall_table(results["medians"], settings["titles"], results.get("spreads", {})),
        target_table([Target(**_fields(t)) for t in results["targets"]]),
        scale_table(results["scale"]),
    ]
    if results["errors"]:
        parts.append("**Errors:**\n" + "\n".join(f"- {error}" for error in results["errors"]))
    parts.append(f"Bench wall time: {results['elapsed_seconds']:.0f} s.")
    return "\n\n".join(parts) + "\n"


def _repetitions(reps: int) -> str:
    if reps >= 3:
        return f"{reps} repetitions"
    return f"{reps} repetition{'s' if reps > 1 else ''} (fewer than 3: rough figures)"


def _fields(target: Mapping[str, Any]) -> dict[str, Any]:
    names = {field.name for field in dataclasses.fields(Target)}
    return {key: value for key, value in target.items() if key in names}
