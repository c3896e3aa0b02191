"""gw admin and gw worker --admin, as subprocesses talking HTTP."""

from __future__ import annotations

import base64
import json
import selectors
import signal
import subprocess
import urllib.error
import urllib.request
from typing import Any

from tests.helpers import poll_until

from .conftest import GW, GW_TIMEOUT, REPO, gw_command, gw_env


class Server:
    """A gw process that serves the admin UI; ``info`` is its --json announcement."""

    def __init__(self, gw: GW, *args: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            gw_command("--json", *args, db_url=gw.db_url),
            cwd=REPO,
            env=env or gw_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.info: dict[str, Any] = json.loads(self._readline())
        self.url: str = self.info["url"]

    def _readline(self, timeout: float = GW_TIMEOUT) -> str:
        assert self.proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            if not sel.select(timeout):
                self.proc.kill()
                raise AssertionError("the admin server did not announce itself")
        line = self.proc.stdout.readline()
        if not line:
            _, err = self.proc.communicate(timeout=GW_TIMEOUT)
            raise AssertionError(f"gw exited before listening: {err}")
        return line

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        request = urllib.request.Request(self.url.rstrip("/") + path, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as ex:
            return ex.code, json.loads(ex.read() or b"null")

    def stop(self, sig: signal.Signals = signal.SIGINT) -> tuple[int, str, str]:
        self.proc.send_signal(sig)
        out, err = self.proc.communicate(timeout=GW_TIMEOUT)
        return self.proc.returncode, out, err

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


def _basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def test_admin_basic_auth_with_a_generated_password(gw: GW) -> None:
    gw.add_job("t")
    server = Server(gw, "admin", "--listen", "127.0.0.1:0")
    try:
        info = server.info
        assert info["auth"] == "basic"
        assert info["username"] == "admin"
        assert info["read_only"] is False
        assert isinstance(info["secret"], str)
        assert len(info["secret"]) >= 16
        assert server.get("/api/session")[0] == 401
        assert server.get("/api/session", _basic("admin", "wrong"))[0] == 401
        status, overview = server.get("/api/overview", _basic("admin", info["secret"]))
        assert status == 200
        assert overview["counts"]["total"] == 1
        code, _, err = server.stop()
    finally:
        server.kill()
    assert code == 0
    assert "Traceback" not in err


def test_admin_never_prints_a_configured_secret(gw: GW) -> None:
    env = gw_env(GRAPHILE_WORKER_ADMIN_PASSWORD="configured-s3cret")
    server = Server(gw, "admin", "--listen", "127.0.0.1:0", "--read-only", env=env)
    try:
        assert server.info["secret"] is None
        assert server.info["read_only"] is True
        status, session = server.get("/api/session", _basic("admin", "configured-s3cret"))
        assert status == 200
        assert session["read_only"] is True
        code, out, err = server.stop(signal.SIGTERM)
    finally:
        server.kill()
    assert code == 0
    assert "configured-s3cret" not in out + err + json.dumps(server.info)


def test_admin_plain_output_names_the_url_and_generated_token(gw: GW) -> None:
    proc = subprocess.Popen(
        gw_command(
            "admin", "--listen", "127.0.0.1:0", "--auth", "header", "--header-name", "x-token",
            db_url=gw.db_url,
        ),
        cwd=REPO,
        env=gw_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        second = proc.stdout.readline()
        assert first.startswith("gw admin listening on http://127.0.0.1:")
        assert second.startswith("auth: header x-token, token generated: ")
        url = first.split()[-1]
        token = second.split()[-1]
        request = urllib.request.Request(url + "api/session", headers={"x-token": token})
        with urllib.request.urlopen(request, timeout=30) as response:
            assert json.loads(response.read())["auth"]["mode"] == "header"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=GW_TIMEOUT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def test_admin_bearer_token_from_the_environment(gw: GW) -> None:
    env = gw_env(GRAPHILE_WORKER_ADMIN_BEARER_TOKEN="tok-from-env")
    server = Server(gw, "admin", "--listen", "127.0.0.1:0", "--auth", "bearer", env=env)
    try:
        assert server.info["secret"] is None
        headers = {"Authorization": "Bearer tok-from-env"}
        assert server.get("/api/session", headers)[0] == 200
        assert server.get("/api/session", {"Authorization": "Bearer nope"})[0] == 401
        assert server.stop()[0] == 0
    finally:
        server.kill()


def test_admin_refuses_no_auth_on_a_public_address(gw: GW) -> None:
    result = gw("admin", "--auth", "none", "--listen", "0.0.0.0:0")
    assert result.returncode == 2
    assert "loopback" in result.error
    assert result.stdout == ""


def test_admin_rejects_a_bad_listen_address(gw: GW) -> None:
    result = gw("admin", "--listen", "nowhere")
    assert result.returncode == 2
    assert result.error


def test_worker_with_admin_serves_both_and_stops_together(gw: GW) -> None:
    server = Server(
        gw, "worker", "--tasks", "examples.tasks", "--admin", "--listen", "127.0.0.1:0",
        "--admin-auth", "none",
    )  # fmt: skip
    try:
        assert server.info["auth"] == "none"
        gw.ok("add", "send_email", "--payload", '{"to": "ada@example.com"}')
        poll_until(lambda: not gw.jobs(), what="the worker to run the job")
        status, overview = server.get("/api/overview")
        assert status == 200
        assert overview["counts"]["total"] == 0
        code, _, err = server.stop()
    finally:
        server.kill()
    assert code == 0
    assert "SIGINT received: shutting down gracefully" in err
    assert "1 job(s) processed" in err
