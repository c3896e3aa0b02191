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


def child_env(tree: str | None = None) -> dict[str, str]:
    """The environment of a benchmark child; ``tree``: a gw source tree (a git
    worktree of another commit) whose gw it imports instead of this one."""
    import os

    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (os.path.join(tree, "src"), env.get("PYTHONPATH")) if p
        )
    return env
