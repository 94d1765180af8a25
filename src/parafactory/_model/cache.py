"""The artifact cache: stage outputs on disk, so a rerun computes only what is missing.

A stage with ``cachers=[...]`` (one per output) saves each output as
``{prefix}_{hash}_{stage}_{output}.{ext}`` in the manager's cache directory,
then a small ``.meta.json`` beside them that says the entry is complete and
which code made it. Every file is written to a temporary name in the directory's
``.staging`` folder and renamed into place, so a killed writer never leaves something
that counts as cached, and two writers racing leave one whole file. Files appear in
the directory only under its lock, each change noted in its index of entries
(:mod:`.entry_index`), which a preview of a large sweep reads instead of every entry.

A cacher is any object with ``extension``, ``save(obj, path)`` and
``load(path)``; ``path(...)`` names its file and may be overridden:

>>> class NpyCacher(Cacher):
...     extension = "npy"
...     def save(self, obj, path): numpy.save(path, obj)
...     def load(self, path): return numpy.load(path)

An entry is valid only for the code that made it and the state it was made
from: its metadata keeps the stage's code fingerprint and the record's
*provenance* before and after the stage, a Merkle chain over the code of every
stage upstream (see :func:`provenance_after`). The file names stay
curifactory's. Each output's size, time and checksum are kept too, so a file
damaged after it was written counts as missing, never as a result.

This module is a leaf: it imports nothing else of parafactory but leaves.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import functools
import hashlib
import json
import logging
import os
import pickle
import re
import types
import uuid
import zlib
from collections.abc import Callable, Iterable, Iterator, Set
from pathlib import Path
from typing import Any, Literal, NamedTuple, TypeAlias

from .._digests import md5_hex
from .._errors import CacheEntryDamagedError
from .._leftovers import HOST, remove_dead
from . import entry_index

logger = logging.getLogger("parafactory.cache")

REGISTRY_FILE = "params_registry.json"
# The cache directory's one lock file, for the registry and for committing entries (its
# name is older than its second use; keeping it leaves one bookkeeping file, not two).
LOCK_FILE = ".registry.lock"
STAGING_DIR = ".staging"  # where files are written, to be renamed into place when whole


class Cacher:
    """Saves and loads one stage output; subclass it for formats of your own."""

    extension = "pkl"

    def save(self, obj: Any, path: Path) -> None:
        """Write ``obj`` to ``path`` (a temporary name: the cache renames it when done)."""
        raise NotImplementedError

    def load(self, path: Path) -> Any:
        """Read back what :meth:`save` wrote."""
        raise NotImplementedError

    def problem_with(self, path: Path) -> str | None:
        """Why the output saved at ``path`` cannot be used, beyond its own file having
        changed (checked by the cache), or ``None``; e.g. files it refers to are gone."""
        return None

    def path(self, directory: Path, prefix: str, record_hash: str, stage: str, output: str) -> Path:
        """Where this output's file lives: ``{prefix}_{hash}_{stage}_{output}.{ext}``."""
        return directory / f"{prefix}_{record_hash}_{stage}_{output}.{self.extension}"


class PickleCacher(Cacher):
    """Any picklable object, with :mod:`pickle`."""

    extension = "pkl"

    def save(self, obj: Any, path: Path) -> None:
        with open(path, "wb") as file:
            pickle.dump(obj, file, protocol=pickle.HIGHEST_PROTOCOL)

    def load(self, path: Path) -> Any:
        with open(path, "rb") as file:
            return pickle.load(file)


class JsonCacher(Cacher):
    """JSON-compatible values (dicts, lists, numbers, strings), readable by anything."""

    extension = "json"

    def save(self, obj: Any, path: Path) -> None:
        path.write_text(json.dumps(obj, indent=2), encoding="utf-8")

    def load(self, path: Path) -> Any:
        return json.loads(path.read_text(encoding="utf-8"))


class JoblibCacher(Cacher):
    """Objects holding numpy arrays, with :func:`joblib.dump`; arrays load memory-mapped."""

    extension = "joblib"

    def save(self, obj: Any, path: Path) -> None:
        import joblib  # on first use: joblib imports numpy, a quarter second at start-up

        joblib.dump(obj, path)

    def load(self, path: Path) -> Any:
        import joblib

        return joblib.load(path, mmap_mode="r")


class FileReferenceCacher(Cacher):
    """Paths to files a stage wrote itself (see ``record.get_path``/``get_dir``), one or a
    list, saved as JSON; the entry counts only while every file it names exists
    (curifactory's ``FileReferenceCacher``).

    >>> @stage(outputs=["model_path"], cachers=[FileReferenceCacher()])
    ... def train(record):
    ...     path = record.get_path("model.bin")
    ...     ...
    ...     return path
    """

    extension = "json"

    def save(self, obj: Any, path: Path) -> None:
        paths = [str(item) for item in obj] if isinstance(obj, (list, tuple)) else str(obj)
        path.write_text(json.dumps(paths, indent=4), encoding="utf-8")

    def load(self, path: Path) -> Any:
        return json.loads(path.read_text(encoding="utf-8"))

    def problem_with(self, path: Path) -> str | None:
        try:
            listed = self.load(path)
        except (OSError, ValueError) as error:
            return f"its list of files is unreadable ({error})"
        missing = [
            item
            for item in ([listed] if isinstance(listed, str) else listed)
            if not os.path.exists(item)
        ]
        return f"files it refers to are gone: {missing[:3]}" if missing else None


@dataclasses.dataclass(frozen=True)
class Lazy:
    """Marks an output that stays on disk and loads on first access of ``record.state[name]``.

    >>> @stage(inputs=["training_data"], outputs=[Lazy("model")], cachers=[PickleCacher()])
    ... def train_model(record, training_data):
    ...     return fit(training_data)
    """

    name: str


@dataclasses.dataclass(frozen=True)
class Stamp:
    """What was written to a cache file: its size, modification time and CRC-32.

    As git's index does, a file whose size and time are unchanged is trusted without
    reading it; one whose time changed (copied, rewritten) is read and its checksum compared.
    """

    size: int
    mtime_ns: int
    crc32: int

    def problem_with(self, path: Path) -> str | None:
        """Why ``path`` no longer holds what was written, or ``None`` when it does."""
        try:
            status = path.stat()
        except FileNotFoundError:
            return "the file is missing"
        if status.st_size != self.size:
            return f"it has {status.st_size:,} bytes where {self.size:,} were written"
        if status.st_mtime_ns != self.mtime_ns and _crc32(path) != self.crc32:
            return "its content changed after it was written (checksum mismatch)"
        return None


@dataclasses.dataclass(frozen=True)
class Artifact:
    """A stage output that is on disk and not loaded yet; ``record.state`` loads it when read."""

    path: Path
    cacher: Cacher
    lazy: bool  # declared Lazy: stays unloaded when the state is printed or compared
    stage: str = ""
    stamp: Stamp | None = None  # None: written by another tool, not checked
    meta: Path | None = None  # the entry this output belongs to, forgotten if it is damaged

    def load(self) -> Any:
        """Read the value from disk; a damaged file raises :class:`CacheEntryDamagedError`
        and its entry is forgotten, so the stage computes it again on its next run."""
        logger.debug("loading %s", self.path)
        problem = self.stamp.problem_with(self.path) if self.stamp is not None else None
        if problem is None:
            try:
                return self.cacher.load(self.path)
            except Exception as error:  # any failure to load means damage
                problem = f"it fails to load ({type(error).__name__}: {error})"
                raise self._damaged(problem) from error
        raise self._damaged(problem)

    def _damaged(self, problem: str) -> CacheEntryDamagedError:
        if self.meta is not None:
            with contextlib.suppress(OSError):
                self.meta.unlink()
        return CacheEntryDamagedError(
            f"cache file {self.path} (an output of stage {self.stage!r}) is damaged: "
            f"{problem}. Its entry is forgotten: run stage {self.stage!r} on this record "
            "again (rerun the sweep) to compute it afresh"
        )

    def __repr__(self) -> str:
        return f"<Lazy {self.path.name}>"


def code_fingerprint(function: Callable[..., Any]) -> str:
    """A hash of a function's bytecode and constants: comments and formatting do not count."""
    digest = hashlib.md5()
    _hash_code(digest, getattr(function, "__code__", None))
    return digest.hexdigest()


def _hash_code(digest: Any, code: types.CodeType | None) -> None:
    if code is None:
        return
    digest.update(code.co_code)
    digest.update(repr(code.co_names).encode())
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            _hash_code(digest, constant)
        else:
            digest.update(repr(constant).encode())


Provenance: TypeAlias = "str | tuple[Provenance, str, str | None, str]"
"""A record's provenance: a digest, or a link not digested yet, ``(upstream, stage, code,
arguments)``. Links cost a tuple per stage; they are digested only when a cache entry is
looked up or stored."""


def provenance_after(
    upstream: Provenance, stage: str, code: str | None, arguments: str = ""
) -> str:
    """The provenance of a record's state after ``stage`` ran on it: a Merkle chain link
    over the provenance before it (``upstream``), the stage's name and code fingerprint, and
    the arguments it was called with. Equal links mean the same code made the same state."""
    return md5_hex(f"{provenance_digest(upstream)}\0{stage}\0{code}\0{arguments}")


def provenance_digest(provenance: Provenance) -> str:
    """The digest a provenance stands for (a link is digested, its upstream first)."""
    if isinstance(provenance, str):
        return provenance
    return _link_digest(*provenance)


@functools.lru_cache(maxsize=4096)
def _link_digest(upstream: Provenance, stage: str, code: str | None, arguments: str) -> str:
    """A link's digest, remembered: the records of a sweep share a few distinct links
    (equal code from an equal start), so an aggregate over many digests each once."""
    return provenance_after(upstream, stage, code, arguments)


class Entry(NamedTuple):
    """Which cache entry: one stage's outputs for one record hash, and how to read them."""

    stage: str
    record_hash: str
    outputs: tuple[str, ...]
    cachers: tuple[Cacher, ...]
    lazy: frozenset[str]
    code: str | None  # the stage's code fingerprint; None: its code is not checked
    arguments: str = ""  # a digest of the extra arguments the stage was called with
    extras: tuple[tuple[str, Cacher], ...] = ()  # what an entry may keep besides its
    # outputs (a stage's reportables), with the cacher of each; its metadata says if it does


class Hit(NamedTuple):
    """A valid entry: its outputs, unloaded, and the record's provenance after the stage;
    ``extras``: those of the entry's extras it keeps, unloaded."""

    artifacts: dict[str, Artifact]
    provenance: str
    extras: dict[str, Artifact] = {}  # shared empty default, never changed


MissKind: TypeAlias = Literal[
    "new",
    "code changed",
    "upstream changed",
    "arguments changed",
    "damaged",
    "overwrite",
    "no parameters",
]
"""Why a stage computes, in a word: nothing cached yet, stale (its code, an upstream stage or
its arguments changed), a file damaged after it was written, an overwrite asked for, or a
record without parameters (never loaded, as in curifactory)."""


class Miss(NamedTuple):
    """No valid entry: why, in a sentence (``reason``) and in a word (``kind``)."""

    reason: str
    kind: MissKind = "new"

    @property
    def damaged(self) -> bool:
        """A file of the entry changed after it was written."""
        return self.kind == "damaged"


@dataclasses.dataclass(frozen=True)
class Cache:
    """A cache directory and the rules for using it; travels to workers with the task.

    ``overwrite`` recomputes every stage; ``overwrite_stages`` names stages to recompute.
    """

    directory: Path
    prefix: str
    overwrite: bool = False
    overwrite_stages: frozenset[str] = frozenset()

    def lookup(self, entry: Entry, upstream: str) -> Hit | Miss:
        """The entry's outputs, unloaded, if they were made by the same code from the same
        upstream state (``upstream`` provenance) and their files are whole; else why not.
        An entry curifactory wrote (no metadata of ours) is adopted as it is."""
        meta_path = self._meta_path(entry)
        try:
            stored = json.loads(_small_file_bytes(meta_path))
            files = stored["outputs"]
        except FileNotFoundError:
            return self._adopt(entry, upstream)
        except (OSError, ValueError, KeyError, TypeError) as error:
            return Miss(f"its metadata file {meta_path} is damaged ({error})", "damaged")
        stale = _staleness(
            entry, stored.get("code"), stored.get("upstream"), stored.get("arguments", ""), upstream
        )
        if stale is not None:
            return stale
        found: dict[str, Artifact] = {}
        for output, cacher in zip(entry.outputs, entry.cachers, strict=True):
            artifact = self._artifact(entry, output, cacher, files, meta_path)
            if isinstance(artifact, Miss):
                return artifact
            found[output] = artifact
        extras: dict[str, Artifact] = {}
        for output, cacher in entry.extras:
            if output not in files:  # this entry does not keep it
                continue
            artifact = self._artifact(entry, output, cacher, files, meta_path)
            if isinstance(artifact, Miss):
                return artifact
            extras[output] = artifact
        return Hit(found, str(stored.get("provenance")), extras)

    def _artifact(
        self, entry: Entry, output: str, cacher: Cacher, files: Any, meta_path: Path
    ) -> Artifact | Miss:
        """One output of a stored entry, checked, or why it cannot be used."""
        path = self._path(entry, output, cacher)
        try:
            stamp = Stamp(*files[output])
        except (KeyError, TypeError):
            return Miss(f"its metadata file {meta_path} does not list output {output!r}", "damaged")
        problem = stamp.problem_with(path) or cacher.problem_with(path)
        if problem is not None:
            return Miss(f"its file {path} is damaged ({problem})", "damaged")
        return Artifact(path, cacher, output in entry.lazy, entry.stage, stamp, meta_path)

    def _adopt(self, entry: Entry, upstream: str) -> Hit | Miss:
        """Outputs curifactory cached (each file with its ``_metadata.json``) are taken as
        they are: their code cannot be checked. Metadata of ours is written for them, so
        from now on they are checked like any entry."""
        paths = {
            output: self._path(entry, output, cacher)
            for output, cacher in zip(entry.outputs, entry.cachers, strict=True)
        }
        if not all(_curifactory_wrote(path) for path in paths.values()):
            return Miss("new")
        logger.info(
            "stage %r for %s: outputs adopted from a curifactory cache, as they are (their "
            "code is unchecked: overwrite this stage if it changed since)",
            entry.stage,
            entry.record_hash,
        )
        provenance = provenance_after(upstream, entry.stage, entry.code, entry.arguments)
        stamps = {output: _stamp_of(path) for output, path in paths.items()}
        self._keep_adopted(entry, stamps, upstream, provenance)
        meta_path = self._meta_path(entry)
        found = {
            output: Artifact(
                path, cacher, output in entry.lazy, entry.stage, stamps[output], meta_path
            )
            for (output, path), cacher in zip(paths.items(), entry.cachers, strict=True)
        }
        return Hit(found, provenance)

    def store(
        self, entry: Entry, values: dict[str, Any], upstream: str, provenance: str
    ) -> dict[str, Any]:
        """Save each output (and each of the entry's extras in ``values``), then the
        entry's metadata; returns the outputs' values for the state (``Lazy`` outputs as
        artifacts).

        Files are written under temporary names in the staging folder, then renamed into
        place together under the cache's lock, so two processes storing one entry leave
        one writer's files and the metadata that describes them.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        staging = self.staging_folder()
        meta_path = self._meta_path(entry)
        in_state, stamps = {}, {}
        cachers = dict(zip(entry.outputs, entry.cachers, strict=True))
        extras = dict(entry.extras)
        with contextlib.ExitStack() as cleanup:
            renames = []
            for output, value in values.items():
                cacher = cachers.get(output) or extras[output]
                path = self._path(entry, output, cacher)
                temporary = cleanup.enter_context(
                    _temporary_in(self._staging_for(path, staging), path)
                )
                cacher.save(value, temporary)
                stamp = stamps[output] = _stamp_of(temporary)  # a rename keeps the time
                renames.append((temporary, path))
                if output in entry.lazy:
                    value = Artifact(path, cacher, True, entry.stage, stamp, meta_path)
                if output in cachers:
                    in_state[output] = value
            temporary = cleanup.enter_context(_temporary_in(staging, meta_path))
            temporary.write_text(json.dumps(_meta(entry, stamps, upstream, provenance)), "utf-8")
            renames.append((temporary, meta_path))
            with self._changing(self._indexed(entry, upstream, provenance, values)):
                for temporary, path in renames:
                    if path.parent != self.directory:  # a folder of its own (reportables)
                        path.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(temporary, path)
        return in_state

    def _staging_for(self, path: Path, staging: Path) -> Path:
        """Where ``path`` is written before it is renamed into place: the staging folder
        for a file in the cache directory (or a folder of it), beside the file for one a
        cacher keeps elsewhere (a rename cannot cross filesystems)."""
        return staging if path.is_relative_to(self.directory) else path.parent

    def staging_folder(self) -> Path:
        """The folder in the cache directory where files are written before they are
        renamed into place (made if missing, as every change here, under the lock): files
        made and removed there leave the directory itself as it was."""
        staging = self.directory / STAGING_DIR
        if not staging.is_dir():
            with self._changing():
                staging.mkdir(exist_ok=True)
        return staging

    def remove_leftovers(self) -> None:
        """Remove temporary files that processes which died mid-write left here."""
        removed = remove_dead(self.directory / STAGING_DIR, _TEMPORARY)
        if removed:
            logger.info("removed %d temporary files of dead runs from %s", removed, self.directory)

    def _keep_adopted(
        self, entry: Entry, stamps: dict[str, Stamp], upstream: str, provenance: str
    ) -> None:
        """Write the metadata of an entry adopted from curifactory's cache."""
        with contextlib.suppress(OSError):  # a read-only cache adopts again next time
            self._write_meta(entry, stamps, upstream, provenance)

    def _write_meta(
        self, entry: Entry, stamps: dict[str, Stamp], upstream: str, provenance: str
    ) -> None:
        indexed = self._indexed(entry, upstream, provenance, stamps)
        staging = self.staging_folder()
        with self._changing(indexed), _atomic(self._meta_path(entry), staging) as temporary:
            temporary.write_text(json.dumps(_meta(entry, stamps, upstream, provenance)), "utf-8")

    def _indexed(
        self, entry: Entry, upstream: str, provenance: str, kept: Iterable[str]
    ) -> entry_index.Stored:
        """What the directory's index notes of an entry stored with the outputs ``kept``:
        not its metadata if it keeps extras or its files are named otherwise (a preview
        reads that)."""
        files = files_of(entry.stage, entry.outputs, entry.cachers)
        made = None
        if files is not None and set(kept) == set(entry.outputs):
            made = entry_index.IndexedEntry(
                entry.code or "", upstream, entry.arguments, provenance, files
            )
        return entry_index.Stored(self.prefix, entry.record_hash, entry.stage, made)

    def start_index(self) -> None:
        """Start the directory's index of entries if it has none and holds no entries
        yet (made, if missing): stores from now on keep it whole, so a preview reads it
        instead of each entry. A directory holding entries gets one from a preview."""
        if (self.directory / entry_index.INDEX_FILE).exists():
            return
        with contextlib.suppress(OSError):  # a read-only cache goes without
            self.directory.mkdir(parents=True, exist_ok=True)
            with self._locked():
                mtime = entry_index.directory_time(self.directory)
                if mtime is not None and not _holds_entries(self.directory):
                    self._write_index(entry_index.start_text(mtime, complete=True), mtime)

    def compact_index(self) -> None:
        """Write the directory's index afresh, the changes noted since its start folded
        into it (a run ends with this): a preview then reads a few lines per stage, not
        one per entry stored."""
        if not (self.directory / entry_index.INDEX_FILE).exists():
            return
        with contextlib.suppress(OSError), self._locked():
            index = entry_index.read(self.directory, entry_index.directory_time(self.directory))
            if index is not None and index.worth_rewriting():
                self._write_index(entry_index.text_of(index), index.mtime)

    def _write_index(self, text: str, mtime: str) -> None:
        """Put ``text``, an index of the directory as it is at ``mtime`` (its time now),
        in place of its index; the caller holds the lock."""
        staging = self.directory / STAGING_DIR
        staging.mkdir(exist_ok=True)  # noted below, with the rest
        with _atomic(self.directory / entry_index.INDEX_FILE, staging) as temporary:
            temporary.write_text(text, "utf-8")
        after = entry_index.directory_time(self.directory)
        if after is not None:
            entry_index.note(self.directory, mtime, after, None)

    def stored(self, entry: Entry, output: str) -> Artifact | None:
        """The artifact of ``output`` as :meth:`store` just wrote it, unchecked (``None`` if
        it is not there): how a value that cannot be pickled leaves its worker."""
        meta_path = self._meta_path(entry)
        try:
            stamp = Stamp(*json.loads(_small_file_bytes(meta_path))["outputs"][output])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        cacher = entry.cachers[entry.outputs.index(output)]
        return Artifact(
            self._path(entry, output, cacher),
            cacher,
            output in entry.lazy,
            entry.stage,
            stamp,
            meta_path,
        )

    def may_hold(self, record_hash: str) -> bool:
        """Whether entries of ``record_hash`` may be here (``False``: they are new)."""
        return True

    def forces(self, stage: str) -> bool:
        """Whether this cache recomputes ``stage`` whatever it holds."""
        return self.overwrite or stage in self.overwrite_stages

    def register(self, representations: dict[str, dict[str, str]]) -> None:
        """Add ``hash -> parameters`` entries to ``params_registry.json`` in one write.

        A cache directory that cannot be written (read-only, a full disk) leaves the
        registry as it is, with a warning: the registry is a convenience, not a result.
        """
        path = self.directory / REGISTRY_FILE
        if not representations or _holds(path, representations):
            return  # nothing new: a rerun, or a read-only cache, writes nothing
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            staging = self.staging_folder()
            with self._changing():  # concurrent runs add to it, never lose entries
                try:
                    registry = json.loads(path.read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    registry = {}
                registry.update(representations)
                with _atomic(path, staging) as temporary:
                    temporary.write_text(json.dumps(registry, indent=2, sort_keys=True), "utf-8")
        except OSError as error:
            logger.warning("the parameters registry %s was not updated: %s", path, error)

    @contextlib.contextmanager
    def _changing(self, stored: entry_index.Stored | None = None) -> Iterator[None]:
        """Change the directory in the block, under the lock, and note the change in its
        index: the entry it stores (``stored``, see :meth:`_indexed`), if any."""
        with self._locked():
            before = entry_index.directory_time(self.directory)
            yield
            after = entry_index.directory_time(self.directory)
            if before is not None and after is not None:
                entry_index.note(self.directory, before, after, stored)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the cache directory's lock (between processes) in the block."""
        lock = os.open(self.directory / LOCK_FILE, os.O_WRONLY | os.O_CREAT, 0o666)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield
        finally:
            os.close(lock)  # which releases the lock

    def _path(self, entry: Entry, output: str, cacher: Cacher) -> Path:
        return cacher.path(self.directory, self.prefix, entry.record_hash, entry.stage, output)

    def _meta_path(self, entry: Entry) -> Path:
        return self.directory / f"{self.prefix}_{entry.record_hash}_{entry.stage}.meta.json"


@dataclasses.dataclass(frozen=True)
class ListedCache(Cache):
    """A cache read once for many lookups in a row (a preview of a large sweep).

    Its index of entries (:mod:`.entry_index`) is read, if it accounts for the directory
    as it is, else the directory is listed. Entries of a record hash no file name holds
    are new without a look at the disk; an entry the index holds is judged from it;
    others are looked up as usual, and what that finds is added to the index, which
    :meth:`keep_index` writes. Outputs a cacher keeps outside the directory (a ``path``
    override) are not seen, so such entries of curifactory's, which have no metadata of
    ours, show as new. It writes nothing else: an entry of curifactory's gets metadata of
    ours when a run adopts it; an entry a call is foreseen to store
    (:meth:`foreseen_entries`) is what later calls find, as they will in the run."""

    hashes: frozenset[str] = frozenset()  # the record hashes the directory's file names hold
    check_files: bool = False  # read every entry, rather than judge it from the index
    index: entry_index.EntryIndex = dataclasses.field(
        default_factory=lambda: entry_index.EntryIndex("", False, {}, {}), compare=False
    )
    # record hash -> stage -> the metadata a call foreseen to compute would store
    foreseen: dict[str, dict[str, ForeseenEntry]] = dataclasses.field(
        default_factory=dict, compare=False
    )

    @classmethod
    def of(cls, cache: Cache, check_files: bool = False) -> ListedCache:
        """``cache``, its index read or its directory listed now; ``check_files``: every
        entry is read and its files checked, as a run does (the index only says which
        records have none), so that files changed in place since they were written, which
        leave the index valid, are foreseen as damaged too."""
        mtime = entry_index.directory_time(cache.directory)
        index = entry_index.read(cache.directory, mtime)
        if index is None:  # none, or another hand changed the directory since
            index = entry_index.EntryIndex(mtime or "", False, {}, {}, changed=True)
        hashes = index.hashes_of(cache.prefix)
        if hashes is None:
            hashes = index.listed[cache.prefix] = _hashes_listed(cache)
            index.changed = True
        fields = {field.name: getattr(cache, field.name) for field in dataclasses.fields(cache)}
        return cls(**{**fields, "hashes": hashes, "index": index, "check_files": check_files})

    def may_hold(self, record_hash: str) -> bool:
        return record_hash in self.hashes or record_hash in self.foreseen

    def holding_nothing_of(self, record_hashes: Set[str]) -> set[str]:
        """Those of ``record_hashes`` that :meth:`may_hold` says are new, at once."""
        new = set(record_hashes)
        new -= self.hashes
        new -= self.foreseen.keys()
        return new

    def indexed(self, record_hash: str, stage: str, files: str | None) -> entry_index.Known | None:
        """What the index says of the entry of ``stage`` for ``record_hash`` if that
        decides its lookup (``files``: the names the stage's cachers give its files, see
        :func:`files_of`), else ``None``: the entry's files must be read."""
        if self.check_files:
            return None
        known = self.index.entries_of(self.prefix).get(stage, {}).get(record_hash)
        return _deciding(known, files, self.index.complete)

    def indexed_entries(
        self, stages: list[tuple[str, str | None]]
    ) -> Callable[[str], tuple[entry_index.Known | None, ...]]:
        """A function of a record hash that says what :meth:`indexed` says of its entry of
        each of ``stages`` (names with their files): made once for many records that
        look up the same stages."""
        if self.check_files:
            return lambda record_hash: (None,) * len(stages)
        entries = self.index.entries_of(self.prefix)
        tables = [(entries.setdefault(stage, {}), files) for stage, files in stages]
        complete = self.index.complete

        def indexed(record_hash: str) -> tuple[entry_index.Known | None, ...]:
            return tuple(
                _deciding(table.get(record_hash), files, complete) for table, files in tables
            )

        return indexed

    def lookup(self, entry: Entry, upstream: str) -> Hit | Miss:
        stored = self.foreseen.get(entry.record_hash, {}).get(entry.stage)
        if stored is not None:
            stale = _staleness(entry, stored.code, stored.upstream, stored.arguments, upstream)
            return Hit({}, stored.provenance) if stale is None else stale
        if entry.record_hash not in self.hashes:  # no file of the record is here
            return _NOTHING_STORED
        files = files_of(entry.stage, entry.outputs, entry.cachers)
        known = self.indexed(entry.record_hash, entry.stage, files)
        if known is None:
            return self._looked_up(entry, upstream, files)
        if isinstance(known, entry_index.Mark):  # what indexed() returns: ABSENT
            return _NOTHING_STORED
        stale = _staleness(entry, known.code, known.upstream, known.arguments, upstream)
        return Hit({}, known.provenance) if stale is None else stale

    def _looked_up(self, entry: Entry, upstream: str, files: str | None) -> Hit | Miss:
        """The entry looked up in its files, and added to the index if it is whole or
        not there (a damaged or stale one is read again next time)."""
        found = super().lookup(entry, upstream)
        if files is None or entry.code is None:
            return found
        if isinstance(found, Hit) and not found.extras:
            known: entry_index.Known = entry_index.IndexedEntry(
                entry.code, upstream, entry.arguments, found.provenance, files
            )
        elif found == _NOTHING_STORED:
            known = entry_index.ABSENT
        else:
            return found
        made = known if isinstance(known, entry_index.IndexedEntry) else None
        if not entry_index.writable(
            entry_index.Stored(self.prefix, entry.record_hash, entry.stage, made)
        ):
            return found
        entries = self.index.entries_of(self.prefix).setdefault(entry.stage, {})
        if entries.get(entry.record_hash) != known:
            entries[entry.record_hash] = known
            self.index.changed = True
        return found

    def keep_index(self) -> None:
        """Write the index afresh if the lookups added to it or changes were noted since
        its start, unless the directory changed since it was read: the next preview of
        these records reads them from it, in a few lines. Only in a directory a run of
        parafactory wrote to (it has the lock file): others, curifactory's, stay as they are."""
        index = self.index
        if not index.worth_rewriting() or not (self.directory / LOCK_FILE).exists():
            return
        with contextlib.suppress(OSError), self._locked():
            if index.mtime and entry_index.directory_time(self.directory) == index.mtime:
                self._write_index(entry_index.text_of(index), index.mtime)

    def foreseen_entries(self, record_hash: str) -> dict[str, ForeseenEntry]:
        """The entries of ``record_hash`` calls are foreseen to store, by stage, for more
        to be added: a call foreseen to compute stores its entry, over any on disk."""
        entries = self.foreseen.get(record_hash)
        if entries is None:
            entries = self.foreseen[record_hash] = {}
        return entries

    def _keep_adopted(
        self, entry: Entry, stamps: dict[str, Stamp], upstream: str, provenance: str
    ) -> None:
        """A preview writes nothing: the run adopts the entry."""


_NOTHING_STORED = Miss("new")


def _deciding(
    known: entry_index.Known | None, files: str | None, complete: bool
) -> entry_index.Known | None:
    """What an index (``complete`` or not) that knows ``known`` of an entry says of it, if
    that decides its lookup, the entry's files being named ``files``; else ``None``."""
    if known is None:
        return entry_index.ABSENT if complete else None
    if known is entry_index.UNREAD:
        return None
    if isinstance(known, entry_index.IndexedEntry) and known.files != files:
        return None
    return known


def _holds_entries(directory: Path) -> bool:
    """Whether the directory holds anything but the cache's bookkeeping (looking no
    further than the first such file: a large cache has hundreds of thousands)."""
    with os.scandir(directory) as found:
        return any(item.name not in (LOCK_FILE, REGISTRY_FILE, STAGING_DIR) for item in found)


def _hashes_listed(cache: Cache) -> frozenset[str]:
    """The record hashes of the cache's prefix that file names in its directory hold."""
    try:
        names = os.listdir(cache.directory)
    except FileNotFoundError:
        names = []
    head = f"{cache.prefix}_"
    start = len(head)
    return frozenset({name[start:].partition("_")[0] for name in names if name.startswith(head)})


def files_of(stage: str, outputs: tuple[str, ...], cachers: tuple[Cacher, ...]) -> str | None:
    """The names of a stage's output files after ``{prefix}_{hash}_``, as the index
    keeps them (``None``, so the index does not judge its entries: a cacher names its
    files otherwise, or checks more than them, as one of files a stage wrote does)."""
    if any(_own(cacher, "path") or _own(cacher, "problem_with") for cacher in cachers):
        return None
    return "/".join(
        f"{stage}_{output}.{cacher.extension}"
        for output, cacher in zip(outputs, cachers, strict=True)
    )


def _own(cacher: Cacher, method: str) -> bool:
    """Whether ``cacher`` has a ``method`` of its own, not :class:`Cacher`'s."""
    return getattr(getattr(cacher, method), "__func__", None) is not getattr(Cacher, method)


class ForeseenEntry(NamedTuple):
    """The metadata a call foreseen to compute would store, as far as lookups read it."""

    code: str | None
    upstream: str
    arguments: str
    provenance: str


def _meta(entry: Entry, stamps: dict[str, Stamp], upstream: str, provenance: str) -> dict[str, Any]:
    """An entry's metadata: what made it (code, arguments, provenance) and its files."""
    return {
        "stage": entry.stage,
        "hash": entry.record_hash,
        "code": entry.code,
        "arguments": entry.arguments,
        "upstream": upstream,
        "provenance": provenance,
        "outputs": {output: dataclasses.astuple(stamp) for output, stamp in stamps.items()},
    }


def _staleness(
    entry: Entry, code: object, made_from: object, arguments: object, upstream: str
) -> Miss | None:
    """Why an entry made by ``code`` from ``made_from`` (a provenance) with ``arguments``
    does not fit this call from ``upstream``, or ``None`` when it does."""
    if entry.code is not None and code != entry.code:
        return Miss("its code changed", "code changed")
    if made_from != upstream:
        return Miss("an upstream stage changed", "upstream changed")
    if arguments != entry.arguments:
        return Miss("it was called with other arguments", "arguments changed")
    return None


def _curifactory_wrote(path: Path) -> bool:
    """Whether ``path`` is an output curifactory cached: it writes ``{name}_metadata.json``
    beside each one."""
    return path.exists() and path.with_name(f"{path.stem}_metadata.json").exists()


def _holds(path: Path, representations: dict[str, dict[str, str]]) -> bool:
    """Whether the registry at ``path`` already has these entries, as they are."""
    try:
        registry = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(registry, dict) and all(
        registry.get(key) == value for key, value in representations.items()
    )


def _small_file_bytes(path: Path) -> bytes:
    """The bytes of a small file, such as an entry's metadata, read without a buffered
    file object (half the cost: a lookup reads one per stage call, a cached sweep
    hundreds of thousands)."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        chunks = [os.read(descriptor, _SMALL_FILE)]
        while len(chunks[-1]) == _SMALL_FILE:  # a regular file reads short only at its end
            chunks.append(os.read(descriptor, _SMALL_FILE))
    finally:
        os.close(descriptor)
    return b"".join(chunks)


_SMALL_FILE = 1 << 16


def _stamp_of(path: Path) -> Stamp:
    status = path.stat()
    return Stamp(status.st_size, status.st_mtime_ns, _crc32(path))


def _crc32(path: Path) -> int:
    checksum = 0
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            checksum = zlib.crc32(chunk, checksum)
    return checksum


@contextlib.contextmanager
def _atomic(path: Path, staging: Path) -> Iterator[Path]:
    """Yield a temporary path in ``staging`` for ``path``; rename it into place only if the
    block succeeds."""
    with _temporary_in(staging, path) as temporary:
        yield temporary
        os.replace(temporary, path)


# see _temporary_in; the machine's name, as dask workers elsewhere may share the cache
_TEMPORARY = re.compile(r"\..*\.(?P<host>[A-Za-z0-9_]+)-(?P<pid>\d+)-[0-9a-f]{8}\.tmp.*")


@contextlib.contextmanager
def _temporary_in(staging: Path, path: Path) -> Iterator[Path]:
    """Yield a fresh temporary name in ``staging`` for ``path`` (same suffix, for cachers
    that add their own); whatever is left under it when the block ends is removed. The name
    holds this machine's name and this process's id: if it dies mid-write, the next run on
    this machine removes the file."""
    temporary = (
        staging / f".{path.stem}.{HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp{path.suffix}"
    )
    try:
        yield temporary
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
