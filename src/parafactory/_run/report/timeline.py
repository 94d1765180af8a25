"""The worker timeline: one lane per worker, a bar per stage, on a time axis (inline SVG).

Workers' lanes come first, in the order they started work; aggregates and chains loaded
whole from the cache sit on the parent's lane. Bars say how each stage went by their
class: computed, cached, failed, a retry after a lost worker, an aggregate; hovering one
names its record and stage. A lane with more bars than it has room for draws a density
strip instead (how busy the worker was, bin by bin), with failures and retries still
drawn one by one. Elements carry ``data-lane`` / ``data-bar`` / ``data-hit`` /
``data-lost`` / ``data-failed`` so tests (and scripts) can count them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .observer import PARENT, Bar, Mark, RunObserver
from .svg import attrs, document, rect, text, title

LABEL = 160  # px for the lanes' names
WIDTH = 960  # px of time
STATS = 150  # px for each lane's share of the run
LANE = 24
BAR = 16
TOP = 30  # room for the legend
AXIS = 34
MAX_BARS = WIDTH // 3  # past this, a lane's bars merge into a density strip
BIN = 2  # px per density bin

CSS = """
.pf-lane-bg{fill:#f4f5f7}.pf-lane-bg.pf-parent{fill:#eef2fb}
.pf-label{font:12px sans-serif;fill:#222}.pf-stats{font:11px sans-serif;fill:#555}
.pf-axis{stroke:#999;stroke-width:1}.pf-tick{font:11px sans-serif;fill:#555;text-anchor:middle}
.pf-bar{stroke:#fff;stroke-width:.5}.pf-computed{fill:#4c78a8}.pf-cached{fill:#9ecae9}
.pf-aggregate{fill:#8e6bbf}.pf-failed{fill:#d62728}.pf-retry{stroke:#ff7f0e;stroke-width:2}
.pf-density{fill:#4c78a8}.pf-hit{fill:#54a24b}
.pf-lost{stroke:#d62728;stroke-width:1.5;stroke-dasharray:4 3}
.pf-failmark{fill:#d62728}.pf-legend{font:11px sans-serif;fill:#333}
"""

_LEGEND = (
    ("pf-bar pf-computed", "computed"),
    ("pf-bar pf-cached", "loaded from the cache"),
    ("pf-bar pf-failed", "failed"),
    ("pf-bar pf-computed pf-retry", "retry after a lost worker"),
    ("pf-bar pf-aggregate", "aggregate (parent)"),
    ("pf-hit", "chain found in the cache (parent)"),
)


class _Scale:
    """Seconds since the run started, to x in pixels."""

    def __init__(self, start: float, end: float) -> None:
        self.start = start
        self.seconds = max(end - start, 1e-3)

    def x(self, moment: float) -> float:
        return LABEL + (moment - self.start) / self.seconds * WIDTH


def timeline_svg(observer: RunObserver) -> str:
    """The timeline of every stage the manager's runs ran, as a standalone ``<svg>``."""
    bars = observer.bars
    lanes = _lanes(bars, observer.marks)
    start, end = _span(observer, bars)
    scale = _Scale(start, end)
    body = _legend(dense=any(len(bars) > MAX_BARS for _, bars in lanes))
    for index, (name, bars) in enumerate(lanes):
        hits = [m for m in observer.marks if m.kind == "hit"] if name == PARENT else []
        body += _lane(TOP + index * LANE, name, bars, hits, scale)
    bottom = TOP + len(lanes) * LANE
    if not lanes:
        body.append(text(LABEL, TOP + 16, "no stage ran in this manager's runs", "pf-label"))
        bottom += LANE
    body += _moments(observer.marks, scale, bottom)
    body += _axis(scale, bottom)
    width = LABEL + WIDTH + STATS
    return document(width, bottom + AXIS, CSS, body, "worker timeline")


def _lanes(bars: Sequence[Bar], marks: Sequence[Mark]) -> list[tuple[str, list[Bar]]]:
    """Each worker's bars, workers in the order they started; the parent's lane last."""
    lanes: dict[str, list[Bar]] = {}
    for bar in sorted(bars, key=lambda bar: bar.start):
        lanes.setdefault(bar.lane, []).append(bar)
    parent = lanes.pop(PARENT, [])
    ordered = list(lanes.items())
    if parent or any(mark.kind == "hit" for mark in marks):
        ordered.append((PARENT, parent))
    return ordered


def _span(observer: RunObserver, bars: Sequence[Bar]) -> tuple[float, float]:
    moments = [bar.start for bar in bars] + [bar.end for bar in bars]
    moments += [mark.time for mark in observer.marks]
    moments += [t for t in (observer.started, observer.finished) if t is not None]
    return (min(moments), max(moments)) if moments else (0.0, 1.0)


def _legend(dense: bool) -> list[str]:
    parts, x = [], float(LABEL)
    shown = [*_LEGEND, ("pf-density", "stages merged: darker is busier")] if dense else _LEGEND
    for css, label in shown:
        parts.append(rect(x, 8, 12, 12, css))
        parts.append(text(x + 16, 18, label, "pf-legend"))
        x += 28 + 6.5 * len(label)
    return parts


def _lane(y: float, name: str, bars: list[Bar], hits: list[Mark], scale: _Scale) -> list[str]:
    kind = "parent" if name == PARENT else "worker"
    dense = len(bars) > MAX_BARS
    group = attrs(
        class_="pf-lane",
        data_lane=name,
        data_kind=kind,
        data_bars=len(bars),
        data_density=int(dense),
    )
    busy = sum(bar.end - bar.start for bar in bars)
    share = (
        f"{len(bars)} stage{'s' if len(bars) != 1 else ''}, {100 * busy / scale.seconds:.0f}% busy"
    )
    parts = [
        f"<g {group}>",
        rect(0, y + 1, LABEL + WIDTH, LANE - 2, f"pf-lane-bg pf-{kind}"),
        text(6, y + 16, _short(name), "pf-label", name),
        text(LABEL + WIDTH + 8, y + 16, share, "pf-stats"),
    ]
    if dense:
        parts += _density(y, bars, scale)
        parts += [_bar(y, bar, scale, "data-flag") for bar in bars if bar.failed or bar.retry]
    else:
        parts += [_bar(y, bar, scale, "data-bar") for bar in bars]
    parts += _hits(y, hits, scale)
    parts.append("</g>")
    return parts


def _bar(y: float, bar: Bar, scale: _Scale, marker: str) -> str:
    css = "pf-bar " + _kind(bar) + (" pf-retry" if bar.retry else "")
    seconds = bar.end - bar.start
    how = _kind(bar)[3:] + (", a retry after a lost worker" if bar.retry else "")
    tip = f"{bar.record.name} · {bar.stage} · {seconds:.3f} s · {how} · {bar.lane}"
    x = scale.x(bar.start)
    extra = {marker.replace("-", "_"): "", "data_record": bar.record.name, "data_stage": bar.stage}
    return rect(x, y + (LANE - BAR) / 2, max(scale.x(bar.end) - x, 1.0), BAR, css, tip, **extra)


def _kind(bar: Bar) -> str:
    if bar.failed:
        return "pf-failed"
    if bar.cached:
        return "pf-cached"
    return "pf-aggregate" if bar.aggregate else "pf-computed"


def _density(y: float, bars: list[Bar], scale: _Scale) -> list[str]:
    """How busy the lane was in each ``BIN`` pixels of time, as the rect's opacity."""
    bins = WIDTH // BIN
    per_bin = scale.seconds / bins
    busy, started = [0.0] * bins, [0] * bins
    for bar in bars:
        first = min(int((bar.start - scale.start) / per_bin), bins - 1)
        started[first] += 1
        for index in range(first, min(int((bar.end - scale.start) / per_bin), bins - 1) + 1):
            low = scale.start + index * per_bin
            busy[index] += max(0.0, min(bar.end, low + per_bin) - max(bar.start, low))
    parts = []
    for index, seconds in enumerate(busy):
        if seconds or started[index]:
            share = min(seconds / per_bin, 1.0)
            tip = f"{started[index]} stages started, busy {100 * share:.0f}% of this slice"
            opacity = f"{0.15 + 0.85 * share:.2f}"
            x = LABEL + index * BIN
            parts.append(rect(x, y + 4, BIN, LANE - 8, "pf-density", tip, opacity=opacity))
    return parts


def _hits(y: float, hits: list[Mark], scale: _Scale) -> list[str]:
    """Chains found whole in the cache: a tick each, or a count per bin when crowded."""
    if len(hits) <= MAX_BARS:
        return [
            rect(scale.x(h.time) - 1, y + 3, 2, LANE - 6, "pf-hit", h.text, data_hit="")
            for h in hits
        ]
    bins: dict[int, int] = {}
    for hit in hits:
        index = int((scale.x(hit.time) - LABEL) // BIN)
        bins[index] = bins.get(index, 0) + 1
    top = max(bins.values())
    return [
        rect(
            LABEL + i * BIN,
            y + 3,
            BIN,
            LANE - 6,
            "pf-hit",
            f"{n} chains found in the cache",
            opacity=f"{0.2 + 0.8 * n / top:.2f}",
            data_hits=n,
        )
        for i, n in sorted(bins.items())
    ]


def _moments(marks: Sequence[Mark], scale: _Scale, bottom: float) -> list[str]:
    """Lost workers as dashed lines across the lanes; failures that left no bar as red
    triangles under them."""
    parts = []
    for mark in marks:
        x = scale.x(mark.time)
        if mark.kind == "lost":
            line = attrs(x1=x, x2=x, y1=TOP, y2=bottom, class_="pf-lost", data_lost="")
            parts.append(f"<line {line}>{title(mark.text)}</line>")
        elif mark.kind == "failed":
            points = f"M{x:.1f} {bottom + 1}l-5 8h10z"
            shape = attrs(d=points, class_="pf-failmark", data_failed="")
            parts.append(f"<path {shape}>{title(mark.text)}</path>")
    return parts


def _axis(scale: _Scale, y: float) -> list[str]:
    step = _tick_step(scale.seconds)
    parts = [f"<line {attrs(x1=LABEL, x2=LABEL + WIDTH, y1=y + 10, y2=y + 10, class_='pf-axis')}/>"]
    for index in range(int(scale.seconds / step) + 1):
        seconds = index * step
        x = LABEL + seconds / scale.seconds * WIDTH
        parts.append(f"<line {attrs(x1=x, x2=x, y1=y + 10, y2=y + 14, class_='pf-axis')}/>")
        parts.append(text(x, y + 26, f"{seconds:g} s", "pf-tick"))
    return parts


def _tick_step(seconds: float) -> float:
    """1, 2 or 5 times a power of ten: about eight ticks across the run."""
    rough = seconds / 8
    power = 10 ** math.floor(math.log10(rough))
    return float(next(m * power for m in (1, 2, 5, 10) if m * power >= rough))


def _short(name: str, most: int = 22) -> str:
    return name if len(name) <= most else "…" + name[-(most - 1) :]
