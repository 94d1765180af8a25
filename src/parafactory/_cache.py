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

This module is a leaf: it imports nothing else of parafactory.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import logging
import os
import pickle
import types
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

logger = logging.getLogger("parafactory.cache")

REGISTRY_FILE = "params_registry.json"


class Cacher:
    """Saves and loads one stage output; subclass it for formats of your own."""

    extension = "pkl"

    def save(self, obj: Any, path: Path) -> None:
        """Write ``obj`` to ``path`` (a temporary name: the cache renames it when done)."""
        raise NotImplementedError

    def load(self, path: Path) -> Any:
        """Read back what :meth:`save` wrote."""
        raise NotImplementedError

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


@dataclasses.dataclass(frozen=True)
class Lazy:
    """Marks an output that stays on disk and loads on first access of ``record.state[name]``.

    >>> @stage(outputs=[Lazy("model")], cachers=[PickleCacher()])
    """

    name: str


@dataclasses.dataclass(frozen=True)
class Artifact:
    """A stage output that is on disk and not loaded yet; ``record.state`` loads it when read."""

    path: Path
    cacher: Cacher
    lazy: bool  # declared Lazy: stays unloaded when the state is printed or compared

    def load(self) -> Any:
        """Read the value from disk."""
        logger.debug("loading %s", self.path)
        return self.cacher.load(self.path)

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


@dataclasses.dataclass(frozen=True)
class Cache:
    """A cache directory and the rules for using it; travels to workers with the task."""

    directory: Path
    prefix: str
    overwrite: bool = False

    def lookup(
        self,
        stage: str,
        outputs: tuple[str, ...],
        cachers: tuple[Cacher, ...],
        record_hash: str,
        fingerprint: str | None,
        lazy: frozenset[str],
    ) -> dict[str, Artifact] | None:
        """The stage's cached outputs, unloaded, or ``None`` when any is missing or stale."""
        meta = self._meta_path(record_hash, stage)
        try:
            stored = json.loads(meta.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if fingerprint is not None and stored.get("code") != fingerprint:
            logger.info("cache of stage %r for %s is stale: its code changed", stage, record_hash)
            return None
        found = {}
        for output, cacher in zip(outputs, cachers, strict=True):
            path = cacher.path(self.directory, self.prefix, record_hash, stage, output)
            if not path.exists():
                return None
            found[output] = Artifact(path, cacher, output in lazy)
        return found

    def store(
        self,
        stage: str,
        values: dict[str, Any],
        cachers: tuple[Cacher, ...],
        record_hash: str,
        fingerprint: str | None,
        lazy: frozenset[str],
    ) -> dict[str, Any]:
        """Save each output, then the entry's meta file; returns values for the state."""
        self.directory.mkdir(parents=True, exist_ok=True)
        in_state = {}
        for (output, value), cacher in zip(values.items(), cachers, strict=True):
            path = cacher.path(self.directory, self.prefix, record_hash, stage, output)
            with _atomic(path) as temporary:
                cacher.save(value, temporary)
            in_state[output] = Artifact(path, cacher, True) if output in lazy else value
        meta = {"stage": stage, "hash": record_hash, "code": fingerprint}
        with _atomic(self._meta_path(record_hash, stage)) as temporary:
            temporary.write_text(json.dumps(meta), encoding="utf-8")
        return in_state

    def register(self, representations: dict[str, dict[str, str]]) -> None:
        """Add ``hash -> parameters`` entries to ``params_registry.json`` in one write."""
        if not representations:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / REGISTRY_FILE
        with open(self.directory / ".registry.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # concurrent runs add to it, never lose entries
            try:
                registry = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                registry = {}
            registry.update(representations)
            with _atomic(path) as temporary:
                temporary.write_text(json.dumps(registry, indent=2, sort_keys=True), "utf-8")

    def _meta_path(self, record_hash: str, stage: str) -> Path:
        return self.directory / f"{self.prefix}_{record_hash}_{stage}.meta.json"


@contextlib.contextmanager
def _atomic(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it into place only if the block succeeds."""
    temporary = path.with_name(
        f".{path.stem}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp{path.suffix}"
    )
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
