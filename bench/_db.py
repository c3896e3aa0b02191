"""The database a benchmark runs on: the given URL, or gw's embedded server."""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator


@contextmanager
def database(url: str | None) -> Iterator[str]:
    """``url``, or (when it is empty) the URL of the embedded server, stopped after."""
    if url:
        yield url
        return
    from gw.db.embedded import EmbeddedPostgres

    embedded = EmbeddedPostgres()
    try:
        yield embedded.start()
    finally:
        embedded.stop()
