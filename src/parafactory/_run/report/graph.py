"""The stage graph of a run: records, their stages, the state each stage produces and
the aggregates that read it, as inline SVG (no graphviz, no system binary).

Each record is a column: its name, then its stages top to bottom, each followed by the
state keys it writes. An aggregate's stage is joined by a curve to each state key it
reads in the records it aggregates. Past ``ONE_COLUMN_EACH`` records, records running
the same stages share a column ("1,200 records like p0"), so a large sweep stays a
handful of columns.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from ..._core.plan import Step
from ..._model.records import Record
from .svg import attrs, document, rect, text, title

ONE_COLUMN_EACH = 24
COLUMN = 190
GAP = 60
HEADER = 38
STAGE = 24
KEY = 18

CSS = """
.pf-record{fill:#fdf6e3;stroke:#b58900}.pf-stage{fill:#e8eef8;stroke:#4c78a8}
.pf-stage.pf-agg{fill:#efe8f8;stroke:#8e6bbf}.pf-key{fill:#fff;stroke:#aaa}
.pf-name{font:bold 12px sans-serif;fill:#222}.pf-sub{font:11px sans-serif;fill:#666}
.pf-text{font:12px monospace;fill:#222}.pf-keytext{font:11px monospace;fill:#444}
.pf-edge{fill:none;stroke:#8e6bbf;stroke-width:1.2;opacity:.7}
"""


@dataclasses.dataclass
class _StageCall:
    name: str
    outputs: tuple[str, ...]
    inputs: tuple[str, ...]
    aggregate: bool
    reads: tuple[Record, ...] = ()


@dataclasses.dataclass
class _Column:
    records: list[Record]
    stages: list[_StageCall]
    x: float = 0.0
    key_y: dict[str, float] = dataclasses.field(default_factory=dict)  # state key -> its y
    stage_y: list[float] = dataclasses.field(default_factory=list)

    @property
    def aggregate_first(self) -> bool:
        return bool(self.stages) and self.stages[0].aggregate

    @property
    def height(self) -> float:
        return HEADER + sum(STAGE + 6 + len(s.outputs) * (KEY + 2) for s in self.stages) + 8


def graph_svg(records: Sequence[Record], steps: Sequence[Step]) -> str:
    """The stage graph of ``records`` (with the aggregates' own records from ``steps``)."""
    columns = _columns(records, steps)
    where: dict[int, _Column] = {}
    for index, column in enumerate(columns):
        column.x = 10 + index * (COLUMN + GAP)
        for record in column.records:
            where[id(record)] = column
    body: list[str] = []
    for column in columns:
        body += _draw_column(column)
    for column in columns:
        body += _edges(column, where)
    width = max(len(columns) * (COLUMN + GAP) - GAP + 20, 300)
    height = max((c.height for c in columns), default=HEADER) + 20
    if not columns:
        body.append(text(10, 24, "no stage has run on these records", "pf-sub"))
    return document(width, height, CSS, body, "stage graph")


def _columns(records: Sequence[Record], steps: Sequence[Step]) -> list[_Column]:
    """A column per record (aggregates after the rest), or per group of alike records."""
    calls: dict[int, list[_StageCall]] = {}
    ordered: dict[int, Record] = {id(record): record for record in records}
    for step in steps:
        ordered.setdefault(id(step.record), step.record)
        found = calls.setdefault(id(step.record), [])
        found += [
            _StageCall(c.spec.name, c.spec.outputs, c.spec.inputs, c.spec.is_aggregate, c.group)
            for c in step.calls
        ]
    columns: dict[object, _Column] = {}
    grouped = len(ordered) > ONE_COLUMN_EACH
    for key, record in ordered.items():
        stages = calls.get(key) or [_StageCall(name, (), (), False) for name in record.stages]
        signature = tuple((s.name, s.outputs, s.aggregate) for s in stages) if grouped else key
        column = columns.get(signature)
        if column is None:
            columns[signature] = _Column([record], stages)
        else:
            column.records.append(record)
            for mine, other in zip(column.stages, stages, strict=True):
                mine.reads += other.reads
    made = list(columns.values())
    return [c for c in made if not c.aggregate_first] + [c for c in made if c.aggregate_first]


def _draw_column(column: _Column) -> list[str]:
    x, first = column.x, column.records[0]
    many = len(column.records) > 1
    label = f"{len(column.records):,} records like {first.name}" if many else first.name
    names = ", ".join(r.name for r in column.records[:20]) + (
        ", …" if len(column.records) > 20 else ""
    )
    sub = "" if first.params is None else f"hash {str(first.params.hash)[:12]}…"
    group = attrs(class_="pf-column", data_record_node=first.name, data_records=len(column.records))
    parts = [
        f"<g {group}>",
        rect(x, 10, COLUMN, HEADER - 6, "pf-record", names),
        text(x + 8, 26, _fit(label, 24), "pf-name", label),
        text(x + 8, 38, "aggregate" if column.aggregate_first and not sub else sub, "pf-sub"),
    ]
    y = 10.0 + HEADER
    for stage in column.stages:
        css = "pf-stage pf-agg" if stage.aggregate else "pf-stage"
        reads, writes = ", ".join(stage.inputs) or "nothing", ", ".join(stage.outputs) or "nothing"
        tip = f"{stage.name}: reads {reads}; writes {writes}"
        column.stage_y.append(y + STAGE / 2)
        parts.append(rect(x, y, COLUMN, STAGE, css, tip, data_stage_node=stage.name))
        parts.append(text(x + 8, y + 16, _fit(stage.name, 24), "pf-text", tip))
        y += STAGE + 4
        for key in stage.outputs:
            column.key_y[key] = y + KEY / 2
            parts.append(rect(x + 16, y, COLUMN - 16, KEY, "pf-key", key, data_state=key))
            parts.append(text(x + 22, y + 13, _fit(key, 24), "pf-keytext", key))
            y += KEY + 2
        y += 2
    parts.append("</g>")
    return parts


def _edges(column: _Column, where: dict[int, _Column]) -> list[str]:
    """A curve from each state key an aggregate reads, in each column it reads from."""
    parts = []
    for stage, y in zip(column.stages, column.stage_y, strict=True):
        sources: dict[int, _Column] = {}
        for record in stage.reads:
            source = where.get(id(record))
            if source is not None and source is not column:
                sources[id(source)] = source
        for source in sources.values():
            for key in stage.inputs or ("",):
                start_y = source.key_y.get(key, 10 + HEADER / 2)
                parts.append(
                    _curve(source.x + COLUMN, start_y, column.x, y, f"{key} → {stage.name}")
                )
    return parts


def _curve(x1: float, y1: float, x2: float, y2: float, tip: str) -> str:
    bend = max(abs(x2 - x1) / 2, 30)
    d = f"M{x1:.1f} {y1:.1f}C{x1 + bend:.1f} {y1:.1f} {x2 - bend:.1f} {y2:.1f} {x2:.1f} {y2:.1f}"
    return f"<path {attrs(d=d, class_='pf-edge', data_edge='')}>{title(tip)}</path>"


def _fit(label: str, most: int) -> str:
    return label if len(label) <= most else label[: most - 1] + "…"
