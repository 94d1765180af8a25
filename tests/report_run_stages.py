"""Stages, parameters and a reportable for the report tests, importable by worker
processes (as ``report_run_stages``)."""

from __future__ import annotations

import dataclasses
import os
import struct
import zlib
from pathlib import Path

from parafactory import ExperimentParameters, PickleCacher, Record, Reportable, aggregate, stage


@dataclasses.dataclass
class Point(ExperimentParameters):
    x: int = 0
    label: str = ""
    fail_at: int = -1  # the x whose second stage raises
    die_once_in: str = ""  # a folder: the first chain to run exits its worker once
    picture: str = ""  # "figures": the first stage reports a picture in that group; "broken"


@stage(outputs=["square", "pid"], cachers=[PickleCacher(), PickleCacher()])
def square(record: Record):
    if record.params.picture == "broken":
        record.report(BrokenReportable("pic"))
    elif record.params.picture:
        record.report(PictureReportable("pic", group=record.params.picture))
    return record.params.x**2, os.getpid()


@stage(inputs=["square"], outputs=["half"])
def halve(record: Record, square):
    params = record.params
    if params.x == params.fail_at:
        raise ValueError(f"x is {params.x}, the value this test fails at")
    if params.die_once_in and _first_time(Path(params.die_once_in)):
        os._exit(3)
    return square / 2


@aggregate(inputs=["half"], outputs=["total"])
def total(record: Record, records, half):
    return sum(value for value in half.values() if value is not None)


def _first_time(folder: Path) -> bool:
    try:
        (folder / "died").touch(exist_ok=False)
    except FileExistsError:
        return False
    return True


def points(count: int, **fields) -> list[Point]:
    return [Point(name=f"p{x}", x=x, **fields) for x in range(count)]


def sweep(param_sets, manager):
    """Each point squared then halved; their halves summed by an aggregate."""
    for params in param_sets:
        halve(square(Record(manager, params)))
    total(Record(manager, None))


def png(width: int = 2, height: int = 2) -> bytes:
    """A small valid PNG (a red square)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


class PictureReportable(Reportable):
    """A user's own reportable: ``render()`` writes a PNG into ``path``, ``html()`` shows
    it from ``path``."""

    def __init__(self, name: str, group: str | None = None) -> None:
        super().__init__(name=name, group=group)
        self.rendered_into: list[str] = []

    def render(self) -> None:
        self.rendered_into.append(self.path)
        Path(self.path, f"{self.qualified_name}.png").write_bytes(png())

    def html(self) -> list[str]:
        return [
            f"<p>picture of {self.record.name}</p>",
            f"<img src='{self.path}/{self.qualified_name}.png'>",
        ]


class BrokenReportable(PictureReportable):
    def render(self) -> None:
        raise RuntimeError("this figure cannot be drawn")
