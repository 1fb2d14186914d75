"""Importing a library without the optional extras it loads whenever they are installed.

Some dependencies import another installed package at their own import time for a feature
the gateway never uses, and every gateway process then carries it (what each costs:
docs/benchmarks.md, "Peak RSS"):

- Mako (Alembic's templates) loads Pygments' lexers and formatters to highlight the source
  in its HTML error pages;
- geopy loads ``requests`` for its default HTTP adapter, which the gateway never uses: every
  geocoder it builds is given its own (``gateway.geocoding.adapter``);
- httpx loads its command-line client (``rich``, ``click``);
- uvicorn loads ``watchfiles`` for ``--reload``, which ``serve`` never does;
- PyJWT loads ``cryptography`` for RSA and EC tokens, which a server with an HS256 secret
  only never verifies (``gateway.entry``).

``without(*modules)`` makes those imports fail inside the block, as they do where the extra
is not installed; the library then takes the path it was written for that case.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

__all__ = ["without"]


@contextlib.contextmanager
def without(*modules: str) -> Iterator[None]:
    """Inside the block, ``import`` of any of ``modules`` not already imported raises
    ``ImportError``; afterwards they import normally again."""
    blocked = [name for name in modules if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # type: ignore[assignment]  # import's "not here" marker
    try:
        yield
    finally:
        for name in blocked:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]
