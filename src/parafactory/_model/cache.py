"""The artifact cache: stage outputs on disk, so a rerun computes only what is missing.

A stage with ``cachers=[...]`` (one per output) saves each output as
``{prefix}_{hash}_{stage}_{output}.{ext}`` in the manager's cache directory,
then a small ``.meta.json`` beside them that says the entry is complete and
which code made it. Every file is written to a temporary name in the same
directory and renamed into place, so a killed writer never leaves something
that counts as cached, and two writers racing leave one whole file.

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
from collections.abc import Callable, Iterator, Set
from pathlib import Path
from typing import Any, Literal, NamedTuple, TypeAlias

from .._digests import md5_hex
from .._errors import CacheEntryDamagedError
from .._leftovers import HOST, remove_dead

logger = logging.getLogger("parafactory.cache")

REGISTRY_FILE = "params_registry.json"
# The cache directory's one lock file, for the registry and for committing entries (its
# name is older than its second use; keeping it leaves one bookkeeping file, not two).
LOCK_FILE = ".registry.lock"


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
        stale = _staleness(entry, stored, upstream)
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

        Files are written under temporary names, then renamed into place together under
        the cache's lock, so two processes storing one entry leave one writer's files and
        the metadata that describes them.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        meta_path = self._meta_path(entry)
        in_state, stamps = {}, {}
        cachers = dict(zip(entry.outputs, entry.cachers, strict=True))
        extras = dict(entry.extras)
        with contextlib.ExitStack() as staging:
            renames = []
            for output, value in values.items():
                cacher = cachers.get(output) or extras[output]
                path = self._path(entry, output, cacher)
                staged = self._staged(path)
                if staged.parent != path.parent:  # a folder of the cache directory's own
                    path.parent.mkdir(parents=True, exist_ok=True)
                temporary = staging.enter_context(_temporary_beside(staged))
                cacher.save(value, temporary)
                stamp = stamps[output] = _stamp_of(temporary)  # a rename keeps the time
                renames.append((temporary, path))
                if output in entry.lazy:
                    value = Artifact(path, cacher, True, entry.stage, stamp, meta_path)
                if output in cachers:
                    in_state[output] = value
            temporary = staging.enter_context(_temporary_beside(meta_path))
            temporary.write_text(json.dumps(_meta(entry, stamps, upstream, provenance)), "utf-8")
            renames.append((temporary, meta_path))
            with self._locked():
                for temporary, path in renames:
                    os.replace(temporary, path)
        return in_state

    def _staged(self, path: Path) -> Path:
        """Where ``path`` is written before it is renamed into place: beside it, or, for a
        file in a folder of the cache directory (a stage's reportables), in the directory
        itself, where a writer killed mid-save leaves its temporary file for the next
        run's sweep to find without looking into every folder."""
        inside = path.parent != self.directory and path.is_relative_to(self.directory)
        return self.directory / path.name if inside else path

    def remove_leftovers(self) -> None:
        """Remove temporary files that processes which died mid-write left here."""
        removed = remove_dead(self.directory, _TEMPORARY)
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
        with self._locked(), _atomic(self._meta_path(entry)) as temporary:
            temporary.write_text(json.dumps(_meta(entry, stamps, upstream, provenance)), "utf-8")

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
            with self._locked():  # concurrent runs add to it, never lose entries
                try:
                    registry = json.loads(path.read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    registry = {}
                registry.update(representations)
                with _atomic(path) as temporary:
                    temporary.write_text(json.dumps(registry, indent=2, sort_keys=True), "utf-8")
        except OSError as error:
            logger.warning("the parameters registry %s was not updated: %s", path, error)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the cache directory's lock (between processes) in the block."""
        with open(self.directory / LOCK_FILE, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _path(self, entry: Entry, output: str, cacher: Cacher) -> Path:
        return cacher.path(self.directory, self.prefix, entry.record_hash, entry.stage, output)

    def _meta_path(self, entry: Entry) -> Path:
        return self.directory / f"{self.prefix}_{entry.record_hash}_{entry.stage}.meta.json"


@dataclasses.dataclass(frozen=True)
class ListedCache(Cache):
    """A cache whose directory was listed once, for many lookups in a row (a preview of a
    large sweep): entries of a record hash that no file name holds are new without a look
    at the disk; others are looked up as usual. Outputs a cacher keeps outside the
    directory (a ``path`` override) are not seen, so such entries of curifactory's, which
    have no metadata of ours, show as new. It writes nothing: an entry of curifactory's
    gets metadata of ours when a run adopts it; an entry a call is foreseen to store
    (:meth:`foreseen_entries`) is what later calls find, as they will in the run."""

    hashes: frozenset[str] = frozenset()  # the record hashes the directory's file names hold
    # record hash -> stage -> the metadata a call foreseen to compute would store
    foreseen: dict[str, dict[str, ForeseenEntry]] = dataclasses.field(
        default_factory=dict, compare=False
    )

    @classmethod
    def of(cls, cache: Cache) -> ListedCache:
        """``cache`` with its directory listed now."""
        try:
            names = os.listdir(cache.directory)
        except FileNotFoundError:
            names = []
        head = f"{cache.prefix}_"
        start = len(head)
        hashes = frozenset(
            {name[start:].partition("_")[0] for name in names if name.startswith(head)}
        )
        fields = {field.name: getattr(cache, field.name) for field in dataclasses.fields(cache)}
        return cls(**{**fields, "hashes": hashes})

    def may_hold(self, record_hash: str) -> bool:
        return record_hash in self.hashes or record_hash in self.foreseen

    def holding_nothing_of(self, record_hashes: Set[str]) -> set[str]:
        """Those of ``record_hashes`` that :meth:`may_hold` says are new, at once."""
        new = set(record_hashes)
        new -= self.hashes
        new -= self.foreseen.keys()
        return new

    def lookup(self, entry: Entry, upstream: str) -> Hit | Miss:
        stored = self.foreseen.get(entry.record_hash, {}).get(entry.stage)
        if stored is None:
            return super().lookup(entry, upstream)
        stale = _staleness(entry, stored._asdict(), upstream)
        return Hit({}, stored.provenance) if stale is None else stale

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


def _staleness(entry: Entry, stored: dict[str, Any], upstream: str) -> Miss | None:
    """Why stored metadata does not fit this call, or ``None`` when it does."""
    if entry.code is not None and stored.get("code") != entry.code:
        return Miss("its code changed", "code changed")
    if stored.get("upstream") != upstream:
        return Miss("an upstream stage changed", "upstream changed")
    if stored.get("arguments", "") != entry.arguments:
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
def _atomic(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it into place only if the block succeeds."""
    with _temporary_beside(path) as temporary:
        yield temporary
        os.replace(temporary, path)


# see _temporary_beside; the machine's name, as dask workers elsewhere may share the cache
_TEMPORARY = re.compile(r"\..*\.(?P<host>[A-Za-z0-9_]+)-(?P<pid>\d+)-[0-9a-f]{8}\.tmp.*")


@contextlib.contextmanager
def _temporary_beside(path: Path) -> Iterator[Path]:
    """Yield a fresh temporary name beside ``path`` (same suffix, for cachers that add
        their own); whatever is left under it when the block ends is removed. The name holds
        this machine's name and this process's id: if it dies mid-write, the next run on this
    machine removes the file."""
    temporary = path.with_name(
        f".{path.stem}.{HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp{path.suffix}"
    )
    try:
        yield temporary
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
