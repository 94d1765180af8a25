"""The cache directory's index of entries: what a preview needs of every entry, in one
file, so ``parafactory plan`` of 100,000 cached records reads one file, not 200,000.

Looking an entry up reads its metadata file (an open and a JSON parse, 50-80 µs); a
preview of a large cached sweep did that for every stage call. The index,
``.entries-index`` in the cache directory, keeps what a lookup compares for each entry:
the code, upstream provenance and arguments it was made with, the provenance it gives and
the names of its output files.

It is trusted only while it accounts for every change to the directory, which the
directory's modification time tells: parafactory changes the directory only under the
cache's lock and notes there, with each change, the directory's time before and after it.
A reader trusts the index only when these times form one chain from its start to the
directory's time now. Anything else that adds, removes or renames a file there (a file
deleted by hand, a damaged entry forgotten, files a stage writes with ``get_path``)
breaks the chain: the next preview looks entries up one by one, as without an index, and
writes the index afresh. A file rewritten in place leaves the directory's time as it was;
the run finds it, as it checks each entry it uses. On filesystems whose times are coarser
than the changes made to them (Linux before 6.13), a change made by something else in
the same tick as one of parafactory's can go unseen by the preview alike.

The index serves previews only: a run looks every entry up in full. This module is a leaf.

The file is lines of tab-separated fields, the first saying what the line holds::

    parafactory entries index 1
    B <time> <complete>          its start: the directory at that time (complete: 1 when
                                 it held no entries, so the index holds all there are)
    L <prefix> <hashes>          the record hashes whose files a listing found then
    G <prefix> <stage> <code> <upstream> <arguments> <provenance> <files> <hashes>
                                 entries made alike, of these records (a start's own)
    A <prefix> <stage> <hashes>  no entry for this stage of these records (a start's own)
    R <prefix> <stage> <hashes>  entries whose metadata it does not hold: read them
    E <before> <after> <prefix> <hash> <stage> <code> <upstream> <arguments> <provenance> <files>
                                 an entry stored since the start
    U <before> <after> <prefix> <hash> <stage>
                                 an entry stored since, whose metadata it does not hold
    C <before> <after>           another change since (the registry, the staging folder)

(``<hashes>`` are separated by spaces.) Entries of a sweep are mostly made alike, so a
start written afresh holds a few ``G`` lines, however many records there are.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import os
from pathlib import Path
from typing import NamedTuple, TypeAlias

INDEX_FILE = ".entries-index"
_HEADER = "parafactory entries index 1\n"
_NOTED_AT_MOST = 100


class IndexedEntry(NamedTuple):
    """What a lookup needs of an entry's metadata; entries made alike share one."""

    code: str  # "" when its stage's code was not checked
    upstream: str
    arguments: str
    provenance: str
    files: str  # its output files' names after ``{prefix}_{hash}_``, joined by "/"


class Mark(enum.Enum):
    """What the index knows of an entry, when it is not the entry's metadata."""

    ABSENT = "absent"  # there is no such entry
    UNREAD = "unread"  # there is one, whose metadata it does not hold: read it


ABSENT = Mark.ABSENT
UNREAD = Mark.UNREAD

Known: TypeAlias = "IndexedEntry | Mark"


class Stored(NamedTuple):
    """An entry a change stores, as the index notes it (``entry``: ``None`` if it cannot
    hold it, as for one that keeps extras or whose cacher names files otherwise)."""

    prefix: str
    record_hash: str
    stage: str
    entry: IndexedEntry | None


@dataclasses.dataclass
class EntryIndex:
    """The index as read: valid for the directory at modification time ``mtime``."""

    mtime: str
    complete: bool  # started on a directory without entries: no entry is missing here
    # prefix -> stage -> record hash -> what the index knows of that entry
    entries: dict[str, dict[str, dict[str, Known]]]
    listed: dict[str, frozenset[str]]  # by prefix: the hashes a listing found at the start
    stored: int = 0  # entries stored since its start
    noted: int = 0  # other changes since its start
    changed: bool = False  # holds entries its file does not

    def worth_rewriting(self) -> bool:
        """Whether writing it afresh would shorten it or add to it: entries stored since
        its start are folded into it (changes of other kinds only when they are many, as
        writing it is one)."""
        return self.changed or self.stored > 0 or self.noted > _NOTED_AT_MOST

    def entries_of(self, prefix: str) -> dict[str, dict[str, Known]]:
        """The entries of cache files named with ``prefix``, by stage, for more to be added."""
        return self.entries.setdefault(prefix, {})

    def hashes_of(self, prefix: str) -> frozenset[str] | None:
        """The record hashes with files named with ``prefix``, or ``None`` if unknown."""
        if not self.complete and prefix not in self.listed:
            return None
        return self.listed.get(prefix, frozenset()).union(self.indexed_hashes(prefix))

    def indexed_hashes(self, prefix: str) -> set[str]:
        """The record hashes of the entries it holds (not of those it knows are not there)."""
        tables = self.entries.get(prefix, {}).values()
        if not any(ABSENT in table.values() for table in tables):
            return set().union(*tables)  # at once: after a run, there are no others
        return {
            record_hash
            for table in tables
            for record_hash, known in table.items()
            if known is not ABSENT
        }


def directory_time(directory: Path) -> str | None:
    """The directory's modification time, as the index notes it (``None``: no directory)."""
    try:
        return str(os.stat(directory).st_mtime_ns)
    except FileNotFoundError:
        return None


def read(directory: Path, mtime: str | None) -> EntryIndex | None:
    """The directory's index if it accounts for every change up to ``mtime``, else ``None``
    (also when ``mtime`` is: there is no directory)."""
    if mtime is None:
        return None
    try:
        text = (directory / INDEX_FILE).read_text(encoding="utf-8")
    except (OSError, ValueError):
        return None
    if not text.startswith(_HEADER) or not text.endswith("\n"):
        return None  # not ours, or a writer died mid-line
    try:
        index = _parsed(text[len(_HEADER) : -1].split("\n"))
    except (ValueError, IndexError, TypeError):
        return None
    return index if index is not None and index.mtime == mtime else None


def _parsed(lines: list[str]) -> EntryIndex | None:
    """The index the lines describe, its time the end of their chain; ``None`` if the
    chain breaks. Lines not of this format raise ``ValueError`` or ``TypeError``."""
    kind, mtime, complete = lines[0].split("\t")
    if kind != "B":
        raise ValueError(f"an index starts with its time, not {kind!r}")
    index = EntryIndex(mtime, complete == "1", {}, {})
    alike: dict[tuple[str, ...], IndexedEntry] = {}  # one object for entries made alike
    for line in lines[1:]:
        kind, *fields = line.split("\t")
        if kind in _CHANGES:
            before, after, *change = fields
            if before != index.mtime:
                return None  # something else changed the directory in between
            index.mtime = after
            _take_change(index, kind, change, alike)
        else:
            _take_start_line(index, kind, fields)
    return index


_CHANGES = frozenset("EUC")


def _take_change(
    index: EntryIndex, kind: str, fields: list[str], alike: dict[tuple[str, ...], IndexedEntry]
) -> None:
    """An ``E``, ``U`` or ``C`` line's change, its times taken already."""
    if kind == "C":
        if fields:
            raise ValueError("a change of no entry names none")
        index.noted += 1
        return
    prefix, record_hash, stage, *made = fields
    known: Known
    if kind == "U":
        if made:
            raise ValueError("an unread entry has no metadata")
        known = UNREAD
    else:
        known = alike.get(key := tuple(made)) or alike.setdefault(key, IndexedEntry(*made))
    index.entries_of(prefix).setdefault(stage, {})[record_hash] = known
    index.stored += 1


def _take_start_line(index: EntryIndex, kind: str, fields: list[str]) -> None:
    """A ``G``, ``A``, ``R`` or ``L`` line: what the directory held at the start."""
    if kind == "L":
        prefix, hashes = fields
        index.listed[prefix] = frozenset(hashes.split(" ")) - {""}
        return
    prefix, stage, *made, hashes = fields
    known: Known
    if kind == "G":
        known = IndexedEntry(*made)
    elif kind in _MARKS and not made:
        known = _MARKS[kind]
    else:
        raise ValueError(f"not a line of an index: {kind!r}")
    index.entries_of(prefix).setdefault(stage, {}).update(dict.fromkeys(hashes.split(" "), known))


_MARKS = {"A": ABSENT, "R": UNREAD}


def note(directory: Path, before: str, after: str, stored: Stored | None) -> None:
    """Add a change made under the cache's lock to the index, if the directory has one:
    the entry it stores, if any. A change the index cannot say (a tab or a line break in
    a name) is left out, so the index is not trusted from then on."""
    if stored is None:
        line = f"C\t{before}\t{after}"
    elif not writable(stored):
        return
    elif stored.entry is None:
        line = "\t".join(("U", before, after, *stored[:3]))
    else:
        line = "\t".join(("E", before, after, *stored[:3], *stored.entry))
    with contextlib.suppress(FileNotFoundError):  # no index: a preview will make one
        descriptor = os.open(directory / INDEX_FILE, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(descriptor, f"{line}\n".encode())
        finally:
            os.close(descriptor)


def writable(stored: Stored) -> bool:
    """Whether the index's lines can hold this entry: no field has a tab or a line break,
    and the record hash no space (hashes are listed separated by spaces)."""
    fields = (*stored[:3], *(stored.entry or ()))
    return " " not in stored.record_hash and not any("\t" in f or "\n" in f for f in fields)


def start_text(mtime: str, complete: bool) -> str:
    """An index starting at ``mtime``, with no entries yet."""
    return f"{_HEADER}B\t{mtime}\t{int(complete)}\n"


def text_of(index: EntryIndex) -> str:
    """The index written afresh: a start with the entries it holds, made alike grouped."""
    lines = [start_text(index.mtime, index.complete)]
    for prefix, listed in index.listed.items():
        indexed = index.indexed_hashes(prefix)
        lines.append(f"L\t{prefix}\t{' '.join(listed - indexed)}\n")
    for prefix, stages in index.entries.items():
        for stage, entries in stages.items():
            groups: dict[Known, list[str]] = {}
            for record_hash, known in entries.items():
                groups.setdefault(known, []).append(record_hash)
            for known, hashes in groups.items():
                if isinstance(known, Mark):
                    kind, fields = ("A" if known is ABSENT else "R"), [prefix, stage]
                else:
                    kind, fields = "G", [prefix, stage, *known]
                lines.append("\t".join((kind, *fields, " ".join(hashes))) + "\n")
    return "".join(lines)
