"""md5 digests of short texts, as parameter hashes and provenance links need them by the
hundred thousand: CPython's own ``_md5`` where it exists (for a few bytes several times
faster than OpenSSL's, which ``hashlib.md5`` is), else ``hashlib``'s. A leaf module."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

try:  # a private module of CPython's: test_private_apis fails loudly if it goes
    from _md5 import md5 as _md5  # type: ignore[import-not-found]
except ImportError:  # a Python built without it
    from hashlib import md5 as _md5

md5: Callable[[bytes], Any] = _md5


def md5_hex(text: str) -> str:
    """The hex md5 digest of ``text`` (UTF-8)."""
    return str(_md5(text.encode()).hexdigest())
