"""curifactory's ``caching`` module, for code that imports cachers from it.

``from curifactory.caching import JsonCacher`` becomes
``from parafactory.caching import JsonCacher``; the same names are also in ``parafactory``.
"""

from ._model.cache import Cacher, FileReferenceCacher, JoblibCacher, JsonCacher, Lazy, PickleCacher

__all__ = [
    "Cacher",
    "FileReferenceCacher",
    "JoblibCacher",
    "JsonCacher",
    "Lazy",
    "PickleCacher",
]
