"""The admin routes, security hooks and error handling (backend-neutral).

:func:`install` registers everything on a Quart or QuartTrio app; the app
class is chosen by :mod:`gw.admin._app`. The order of checks on a request is:
auth (401), then for writes read-only (403 ``read_only``) and CSRF (403
``csrf``), then input validation (400/422), then the database (503 when it
cannot be reached).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import html
import logging
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import TYPE_CHECKING, Any, NoReturn, get_args
from urllib.parse import urlsplit

import msgspec
import psycopg
from quart import g, request
from werkzeug.exceptions import HTTPException

from .. import __version__
from ..errors import (
    ConfigurationError,
    DatabaseError,
    GwError,
    HookError,
    PayloadError,
)
from ..types import (
    CancelResult,
    CleanupTask,
    HistoryEntry,
    HistoryOutcome,
    Job,
    JobSpec,
    LimitUsage,
)
from . import models as m
from .config import CSRF_HEADER

if TYPE_CHECKING:
    from quart import Quart, Response

    from .config import AdminServerConfig

__all__ = ("CSP", "DEFAULT_FAIL_REASON", "ApiError", "install")

logger = logging.getLogger("gw.admin")

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": CSP,
}
ASSET_CACHE = "public, max-age=3600"
NO_STORE = "no-store"
DEFAULT_FAIL_REASON = "Manually marked as failed from the gw admin UI"
MAX_BODY_BYTES = 1024 * 1024
MAX_PAYLOAD_DEPTH = 64
JSON = "application/json"

ASSETS: dict[str, tuple[str, str]] = {
    "/assets/admin.css": ("admin.css", "text/css; charset=utf-8"),
    "/assets/admin.js": ("admin.js", "text/javascript; charset=utf-8"),
    "/favicon.ico": ("favicon.svg", "image/svg+xml"),
}
WRITE_ENDPOINTS = frozenset(
    {"add_job", "job_action", "cancel_jobs", "remove_by_key", "maintenance"}
)
# The POST-only routes under /api/jobs/ that GET /api/jobs/<id> would otherwise match.
JOB_WRITE_PATHS = frozenset({"action", "cancel", "remove-by-key"})
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
JOB_STATES: tuple[str, ...] = get_args(m.JobStateFilter)
HISTORY_OUTCOMES: tuple[str, ...] = get_args(HistoryOutcome)
RESCHEDULE_FIELDS = ("run_at", "priority", "attempts", "max_attempts")
_DEFAULT_RANGE = timedelta(hours=1)


class ApiError(Exception):
    """An error answer: HTTP status, error code, message and (for validation) the field."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field


def _invalid(message: str, field: str, status: int = 422) -> NoReturn:
    raise ApiError(status, "validation", message, field)


# --------------------------------------------------------------------------- input


_AT = re.compile(r"^(?P<base>.*?) - at `\$(?P<path>[^`]*)`$", re.DOTALL)
_NAMED = re.compile(r"field `(?P<name>[^`]+)`")


def _field_of(path: str) -> str:
    """``.ids[0]`` -> ``ids``: the top-level request field a msgspec path points into."""
    head = path.lstrip(".")
    return re.split(r"[.\[]", head, maxsplit=1)[0] if head else ""


def _validation_error(ex: msgspec.ValidationError) -> ApiError:
    text = str(ex)
    base, path = text, ""
    match = _AT.match(text)
    if match:
        base, path = match["base"], match["path"]
    field = _field_of(path)
    named = _NAMED.search(base)
    if not field and named:
        field = named["name"]
    where = path.lstrip(".") or field
    message = f"{where}: {base}" if where else base
    return ApiError(422, "validation", message, field or "body")


def _check_text(value: Any, field: str, status: int = 422, depth: int = 0) -> None:
    """Reject what PostgreSQL cannot store: NUL characters and over-deep JSON.

    ``depth`` counts the arrays/objects around ``value``; a container of its
    own adds a level, so a payload of 64 nested arrays passes and 65 do not.
    """
    if isinstance(value, str):
        if "\x00" in value:
            _invalid(f"{field} must not contain NUL (\\u0000) characters", field, status)
        return
    if isinstance(value, (dict, list, tuple)):
        depth += 1
        if depth > MAX_PAYLOAD_DEPTH:
            _invalid(f"{field} is nested more than {MAX_PAYLOAD_DEPTH} levels deep", field, status)
        if isinstance(value, dict):
            for key, item in value.items():
                _check_text(key, field, status, depth)
                _check_text(item, field, status, depth)
        else:
            for item in value:
                _check_text(item, field, status, depth)


async def _read_body(model: Any) -> Any:
    data = await request.get_data(cache=False, as_text=False)
    if not data.strip():
        _invalid("the request body must be a JSON object", "body", 400)
    try:
        body = msgspec.json.decode(data, type=model)
    except msgspec.ValidationError as ex:
        raise _validation_error(ex) from None
    except UnicodeDecodeError:
        _invalid("the request body is not valid UTF-8 JSON", "body", 400)
    except (msgspec.DecodeError, RecursionError) as ex:
        _invalid(f"the request body is not valid JSON: {ex}", "body", 400)
    for name in getattr(body, "__struct_fields__", ()):
        _check_text(getattr(body, name), name)
    return body


def _check_origin(host: str | None) -> None:
    """Writes come from this server's own page (or from no browser at all)."""
    origin = request.headers.get("Origin")
    if request.headers.get("Sec-Fetch-Site") == "cross-site" or origin == "null":
        raise ApiError(403, "origin", "cross-site writes are refused")
    if origin is None:
        return  # not a browser, or a same-origin GET-style request
    netloc = urlsplit(origin).netloc.lower()
    if host is None or netloc != host.strip().lower():
        raise ApiError(
            403, "origin", f"writes from {origin!r} are refused: only this server's page may write"
        )


def _query_text(name: str) -> str | None:
    value = request.args.get(name)
    if value is None or not value.strip():
        return None
    if len(value) > m.MAX_FILTER_LENGTH:
        _invalid(f"{name} is longer than {m.MAX_FILTER_LENGTH} characters", name, 400)
    _check_text(value, name, 400)
    return value.strip()


def _query_int(name: str, default: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw.strip() == "":
        return default
    raw = raw.strip()
    if not re.fullmatch(r"[+-]?\d{1,30}", raw):
        raise ApiError(400, "validation", f"{name} must be an integer, got {raw[:40]!r}", name)
    return int(raw)


def _job_id(raw: str) -> int:
    if not re.fullmatch(r"\d{1,19}", raw) or not 1 <= int(raw) <= m.BIGINT_MAX:
        _invalid(f"the job id must be a positive integer, got {raw[:40]!r}", "id", 400)
    return int(raw)


def _query_id(name: str, what: str) -> int | None:
    """A positive 64-bit id from the query string (``what`` names it in the message)."""
    raw = request.args.get(name)
    if raw is None or not raw.strip():
        return None
    raw = raw.strip()
    if not re.fullmatch(r"\d{1,19}", raw) or not 1 <= int(raw) <= m.BIGINT_MAX:
        _invalid(f"{name} must be {what} (a positive integer), got {raw[:40]!r}", name, 400)
    return int(raw)


def _query_time(name: str) -> datetime | None:
    """An ISO 8601 date and time with an offset from the query string."""
    raw = request.args.get(name)
    if raw is None or not raw.strip():
        return None
    raw = raw.strip()
    # An unencoded "+01:00" arrives as " 01:00": read it as meant.
    text = re.sub(r" (\d\d(:?\d\d)?)$", r"+\1", raw) if "T" in raw else raw
    try:
        value = datetime.fromisoformat(text) if len(text) <= 64 else None
    except ValueError:
        value = None
    if value is None or value.tzinfo is None:
        _invalid(
            f"{name} must be an ISO 8601 date and time with an offset, e.g. "
            f"2026-01-01T09:30:00Z or 2026-01-01T10:30:00+01:00, got {raw[:40]!r}",
            name,
            400,
        )
    return value


def _query_duration(name: str, *, numbers: bool) -> float | None:
    """Seconds from ``15m``, ``1h``, ``7d`` (and, with ``numbers``, plain seconds)."""
    raw = request.args.get(name)
    if raw is None or not raw.strip():
        return None
    raw = raw.strip()
    unit = m.DURATION_UNITS.get(raw[-1:])
    if unit is not None and re.fullmatch(r"\d{1,6}", raw[:-1]):
        seconds = float(int(raw[:-1]) * unit)
    elif numbers and re.fullmatch(r"\d{1,9}(\.\d{1,6})?", raw):
        seconds = float(raw)
    else:
        also = " or a number of seconds" if numbers else ""
        _invalid(
            f"{name} must be a count and a unit (s, m, h, d or w), e.g. 15m, 1h, 24h or 7d{also}; "
            f"got {raw[:40]!r}",
            name,
            400,
        )
    if seconds <= 0:
        _invalid(f"{name} must be longer than 0, got {raw!r}", name, 400)
    if seconds > m.MAX_RANGE_DAYS * 86400:
        _invalid(f"{name} must be at most {m.MAX_RANGE_DAYS}d, got {raw!r}", name, 400)
    return seconds


def _config_error(error: ConfigurationError, fields: tuple[str, ...]) -> ApiError:
    """A gw argument check as a 400 naming the query parameter it is about."""
    first = error.message.split(" ", 1)[0]
    return ApiError(400, "validation", error.message, first if first in fields else fields[0])


# --------------------------------------------------------------------------- output


def listed_job(job: Job, now: datetime) -> m.ListedJob:
    """A gw Job as the API shows it (flags as a sorted list, plus its state)."""
    return m.ListedJob(
        id=job.id,
        task_identifier=job.task_identifier,
        queue_name=job.queue_name,
        payload=job.payload,
        priority=job.priority,
        run_at=job.run_at,
        attempts=job.attempts,
        max_attempts=job.max_attempts,
        last_error=job.last_error,
        created_at=job.created_at,
        updated_at=job.updated_at,
        key=job.key,
        locked_at=job.locked_at,
        locked_by=job.locked_by,
        revision=job.revision,
        flags=job.flag_names,
        is_available=job.is_available,
        state=job.state(now),
    )


def history_item(entry: HistoryEntry) -> m.HistoryItem:
    """A recorded attempt as the API shows it (with its duration and queue wait)."""
    return msgspec.convert(entry, m.HistoryItem, from_attributes=True)


def limit_summary(limit: LimitUsage) -> m.LimitSummary:
    """A fleet-wide limit as the API shows it (its key split into kind and name)."""
    prefix, sep, name = limit.key.partition(":")
    kind: m.LimitKind = "other"
    if sep and prefix == "task":
        kind = "task"
    elif sep and prefix == "queue":
        kind = "queue"
    return m.LimitSummary(
        key=limit.key,
        kind=kind,
        name=name if kind != "other" else limit.key,
        rate=limit.rate,
        burst=limit.burst,
        max_concurrency=limit.max_concurrency,
        tokens=limit.tokens,
        running=limit.running,
        updated_at=limit.updated_at,
    )


def cancel_response(results: list[CancelResult]) -> m.CancelJobsResponse:
    """The per-job outcomes of a cancel, with a tally per outcome."""
    tally = dict.fromkeys(m.CancelCounts.__struct_fields__, 0)
    for result in results:
        tally[result.outcome] += 1
    return m.CancelJobsResponse(
        action="cancel",
        count=tally["cancelled"] + tally["cancelling"],
        counts=m.CancelCounts(**tally),
        results=[
            m.CancelJobResult(
                job_id=result.job_id, outcome=result.outcome, worker_id=result.worker_id
            )
            for result in results
        ],
    )


def _now() -> datetime:
    return datetime.now(UTC)


def _load_static(name: str) -> bytes:
    return (resources.files("gw.admin") / "static" / name).read_bytes()


def render_page(config: AdminServerConfig, csrf_token: str) -> bytes:
    """The HTML page with its ``{{placeholders}}`` filled in (HTML-escaped)."""
    template = (resources.files("gw.admin") / "templates" / "index.html").read_text("utf-8")
    auth = config.auth
    values = {
        "auth_mode": auth.mode,
        "auth_header": auth.header_name if auth.mode == "header" else "",
        "csrf_header": CSRF_HEADER,
        "csrf_token": csrf_token,
        "read_only": "true" if config.read_only else "false",
        "schema": config.utils.schema,
        "version": __version__,
    }
    return re.sub(
        r"\{\{(\w+)\}\}",
        lambda match: html.escape(values.get(match[1], ""), quote=True),
        template,
    ).encode("utf-8")


# --------------------------------------------------------------------------- the app


@dataclass
class _State:
    config: AdminServerConfig
    csrf_token: str
    page: bytes
    assets: dict[str, tuple[bytes, str]]


def _equal(given: str, expected: str) -> bool:
    # compare_digest needs equal types; bytes also copes with non-ASCII input.
    return hmac.compare_digest(
        given.encode("utf-8", "surrogateescape"), expected.encode("utf-8", "surrogateescape")
    )


def install(app: Quart, config: AdminServerConfig, csrf_token: str) -> None:
    """Register the admin routes and hooks on ``app``."""
    state = _State(
        config=config,
        csrf_token=csrf_token,
        page=render_page(config, csrf_token),
        assets={path: (_load_static(name), ctype) for path, (name, ctype) in ASSETS.items()},
    )
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    # No HTML redirects: "/api/jobs//1" is a plain JSON 404, not a 308 to "/api/jobs/1".
    app.url_map.merge_slashes = False
    utils = config.utils
    auth = config.auth

    def respond(body: bytes, status: int = 200, content_type: str = JSON) -> Response:
        return app.response_class(body, status=status, content_type=content_type)

    def json_response(value: Any, status: int = 200) -> Response:
        return respond(m.encode(value), status)

    def error_response(error: ApiError) -> Response:
        detail = m.ErrorDetail(code=error.code, message=error.message, field=error.field)  # type: ignore[arg-type]
        return json_response(m.ErrorResponse(error=detail), error.status)

    # -- auth --------------------------------------------------------------------

    def credentials_ok() -> bool:
        secret = auth.secret or ""
        if auth.mode == "basic":
            scheme, _, value = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "basic":
                return False
            try:
                decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
            except (binascii.Error, ValueError):
                return False
            user, sep, password = decoded.partition(":")
            user_ok = _equal(user, auth.username)
            password_ok = _equal(password, secret)
            return bool(sep) and user_ok and password_ok
        if auth.mode == "bearer":
            scheme, _, value = request.headers.get("Authorization", "").partition(" ")
            return scheme.lower() == "bearer" and _equal(value.strip(), secret)
        if auth.mode == "header":
            return _equal(request.headers.get(auth.header_name, ""), secret)
        return True

    def unauthorized(page: bool) -> Response:
        if auth.mode == "basic":
            hint = "send HTTP Basic credentials"
        elif auth.mode == "bearer":
            hint = "send 'Authorization: Bearer <token>'"
        else:
            hint = f"send the admin token in the {auth.header_name} header"
        if page:
            body = (
                b"<!doctype html><title>gw admin: sign in required</title>"
                b"<p>Sign in required. Reload the page to enter the admin credentials.</p>"
            )
            response = respond(body, 401, "text/html; charset=utf-8")
        else:
            response = error_response(
                ApiError(401, "unauthorized", f"missing or wrong credentials: {hint}")
            )
        if auth.mode == "basic":
            response.headers["WWW-Authenticate"] = 'Basic realm="gw admin", charset="UTF-8"'
        elif auth.mode == "bearer":
            response.headers["WWW-Authenticate"] = 'Bearer realm="gw admin"'
        return response

    @app.before_request
    async def _guard() -> Response | None:
        g.gw_started = time.perf_counter()
        host = request.headers.get("Host")
        if not config.serves_host(host):
            raise ApiError(
                403,
                "host",
                f"this admin server does not answer to the host {host!r}; open it by its "
                "IP address or localhost, or allow the name with --allowed-host "
                "(AdminServerConfig(allowed_hosts=...))",
            )
        path = request.path
        is_api = path == "/api" or path.startswith("/api/")
        if auth.mode != "none" and (is_api or (path == "/" and auth.mode == "basic")):
            if not credentials_ok():
                return unauthorized(page=not is_api)
        if request.endpoint in WRITE_ENDPOINTS:
            _check_origin(host)
            if config.read_only:
                raise ApiError(
                    403, "read_only", "this admin server is read-only: no changes are allowed"
                )
            token = request.headers.get(CSRF_HEADER)
            if token is None:
                raise ApiError(
                    403,
                    "csrf",
                    f"missing CSRF token: send it in the {CSRF_HEADER} header "
                    "(GET /api/session returns it)",
                )
            if not _equal(token, state.csrf_token):
                raise ApiError(403, "csrf", f"wrong CSRF token in the {CSRF_HEADER} header")
        return None

    @app.after_request
    async def _headers(response: Response) -> Response:
        headers = response.headers
        if request.method in BODY_METHODS:
            # A request refused before its body was read (401, 403, 404...):
            # read it now, so the connection stays in step for the next
            # request; past the size limit, close the connection instead.
            try:
                await request.get_data(cache=False)
            except Exception:
                headers["Connection"] = "close"
        for name, value in SECURITY_HEADERS.items():
            headers[name] = value
        is_asset = request.path in state.assets and response.status_code in (200, 304)
        headers["Cache-Control"] = ASSET_CACHE if is_asset else NO_STORE
        started = g.get("gw_started")
        took = (time.perf_counter() - started) * 1000 if started is not None else 0.0
        logger.debug(
            "%s %s -> %d in %.1f ms", request.method, request.path, response.status_code, took
        )
        return response

    # -- errors ------------------------------------------------------------------

    @app.errorhandler(ApiError)
    async def _api_error(error: ApiError) -> Response:
        return error_response(error)

    @app.errorhandler(HTTPException)
    async def _http_error(error: HTTPException) -> Response:
        status = error.code or 500
        code = {
            400: "validation",
            404: "not_found",
            405: "method_not_allowed",
            413: "payload_too_large",
        }.get(status, "validation" if status < 500 else "internal")
        message = {
            404: f"no such route: {request.path}",
            405: f"{request.method} is not allowed on {request.path}",
            413: f"the request body is larger than {MAX_BODY_BYTES} bytes",
        }.get(status, error.description or error.name)
        response = error_response(
            ApiError(status, code, message, "body" if code == "validation" else None)
        )
        if status == 405 and error.get_headers():
            for name, value in error.get_headers():
                if name.lower() == "allow":
                    response.headers["Allow"] = value
        return response

    @app.errorhandler(GwError)
    async def _gw_error(error: GwError) -> Response:
        return error_response(_from_gw_error(error))

    @app.errorhandler(psycopg.Error)
    async def _db_error(error: psycopg.Error) -> Response:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        logger.warning("admin request failed on the database: %s", first)
        return error_response(ApiError(503, "database", f"database error: {first}"))

    @app.errorhandler(Exception)
    async def _crash(error: Exception) -> Response:
        logger.exception("admin request %s %s failed", request.method, request.path)
        return error_response(
            ApiError(500, "internal", "internal error in gw admin; see the server log")
        )

    # -- page and assets ---------------------------------------------------------

    async def page() -> Response:
        return respond(state.page, 200, "text/html; charset=utf-8")

    def asset_view(path: str) -> Any:
        body, content_type = state.assets[path]

        async def view() -> Response:
            return respond(body, 200, content_type)

        return view

    app.add_url_rule("/", "page", page, methods=["GET"])
    for path in state.assets:
        endpoint = "asset_" + re.sub(r"\W", "_", path)
        app.add_url_rule(path, endpoint, asset_view(path), methods=["GET"])

    # -- read routes -------------------------------------------------------------

    async def session() -> Response:
        return json_response(
            m.SessionResponse(
                schema=utils.schema,
                read_only=config.read_only,
                version=__version__,
                csrf_header=CSRF_HEADER,
                csrf_token=state.csrf_token,
                auth=m.SessionAuth(
                    mode=auth.mode,
                    username=auth.username if auth.mode == "basic" else None,
                    header_name=auth.header_name if auth.mode == "header" else None,
                ),
            )
        )

    async def overview() -> Response:
        stats = await utils.stats()
        queues = await utils.queues()
        locked = await utils.locked_workers()
        active = await utils.list_active_workers()
        tasks = await utils.known_task_identifiers()
        return json_response(
            m.OverviewResponse(
                counts=m.JobCounts(
                    total=stats.total,
                    ready=stats.ready,
                    scheduled=stats.scheduled,
                    locked=stats.locked,
                    failed=stats.failed,
                ),
                queues=[msgspec.convert(q, m.QueueSummary, from_attributes=True) for q in queues],
                locked_workers=[
                    msgspec.convert(w, m.LockedWorkerSummary, from_attributes=True) for w in locked
                ],
                active_workers=[
                    msgspec.convert(w, m.ActiveWorkerSummary, from_attributes=True) for w in active
                ],
                tasks=sorted(tasks),
                now=_now(),
            )
        )

    def list_limit() -> int:
        limit = _query_int("limit", m.DEFAULT_LIST_LIMIT)
        if limit < 1:
            _invalid(
                f"limit must be an integer between 1 and {m.MAX_LIST_LIMIT} "
                f"(larger values are capped to {m.MAX_LIST_LIMIT}), got {limit}",
                "limit",
                400,
            )
        return min(limit, m.MAX_LIST_LIMIT)

    async def list_jobs() -> Response:
        job_state = request.args.get("state", "all").strip() or "all"
        if job_state not in JOB_STATES:
            _invalid(
                f"state must be one of {', '.join(JOB_STATES)}, got {job_state[:40]!r}",
                "state",
                400,
            )
        limit = list_limit()
        offset = _query_int("offset", 0)
        if not 0 <= offset <= m.MAX_OFFSET:
            _invalid(f"offset must be an integer >= 0, got {offset}", "offset", 400)
        identifier = _query_text("identifier")
        queue = _query_text("queue")
        search = _query_text("search")
        page = await utils.list_jobs(
            state=job_state,  # type: ignore[arg-type]
            identifier=identifier,
            queue=queue,
            search=search,
            limit=limit,
            offset=offset,
        )
        now = _now()
        return json_response(
            m.JobListResponse(
                jobs=[listed_job(job, now) for job in page.jobs],
                limit=page.limit,
                offset=page.offset,
                has_more=page.has_more,
            )
        )

    async def job_detail(job_id: str) -> Response:
        if job_id in JOB_WRITE_PATHS:
            raise ApiError(
                405, "method_not_allowed", f"{request.method} is not allowed on {request.path}"
            )
        job = await utils.get_job(_job_id(job_id))
        if job is None:
            raise ApiError(404, "not_found", f"job {job_id} does not exist", "id")
        return json_response(m.JobResponse(job=listed_job(job, _now())))

    async def limits() -> Response:
        usage = await utils.list_limits()
        return json_response(
            m.LimitsResponse(limits=[limit_summary(limit) for limit in usage], now=_now())
        )

    async def list_history() -> Response:
        outcome = _query_text("outcome")
        if outcome is not None and outcome not in HISTORY_OUTCOMES:
            _invalid(
                f"outcome must be one of {', '.join(HISTORY_OUTCOMES)}, got {outcome[:40]!r}",
                "outcome",
                400,
            )
        limit = list_limit()
        filters: dict[str, Any] = {
            "task": _query_text("task"),
            "queue": _query_text("queue"),
            "outcome": outcome,
            "job_id": _query_id("job_id", "a job id"),
            "since": _query_time("since"),
            "before_id": _query_id("before_id", "a history entry id"),
        }
        try:
            # One more than asked tells whether there is a next page.
            entries = await utils.list_history(limit=limit + 1, **filters)
        except ConfigurationError as ex:
            raise _config_error(ex, tuple(filters)) from None
        page = entries[:limit]
        has_more = len(entries) > limit
        return json_response(
            m.HistoryListResponse(
                entries=[history_item(entry) for entry in page],
                limit=limit,
                has_more=has_more,
                next_before_id=page[-1].id if has_more else None,
            )
        )

    async def history_stats() -> Response:
        span = _query_duration("range", numbers=False)
        since = _query_time("since")
        until = _query_time("until")
        bucket = _query_duration("bucket", numbers=True)
        task = _query_text("task")
        queue = _query_text("queue")
        if span is not None and since is not None:
            _invalid(
                "give either range (ending at until, or now) or since (to until, or now), not both",
                "range",
                400,
            )
        now = _now()
        end = until or now
        if since is None:
            try:
                since = end - (_DEFAULT_RANGE if span is None else timedelta(seconds=span))
            except OverflowError:
                _invalid(
                    f"until {end.isoformat()} minus the range is before the year 1", "until", 400
                )
        if until is None and since >= end:
            _invalid(
                f"since ({since.isoformat()}) must be in the past: before now "
                f"({end.isoformat()}), or before until if you give one",
                "since",
                400,
            )
        try:
            stats = await utils.history_stats(
                since=since, until=end, bucket=bucket, task=task, queue=queue
            )
        except ConfigurationError as ex:
            raise _config_error(ex, ("since", "until", "bucket", "task", "queue")) from None
        return json_response(
            m.HistoryStatsResponse(
                since=stats.since,
                until=stats.until,
                bucket=stats.bucket,
                buckets=stats.buckets,
                tasks=stats.tasks,
                task_count=stats.task_count,
                backlog=stats.backlog,
                now=now,
            )
        )

    async def openapi() -> Response:
        from .openapi import openapi_document

        return respond(openapi_document(auth))

    # -- write routes ------------------------------------------------------------

    async def add_job() -> Response:
        body = await _read_body(m.AddJobRequest)
        mode = body.job_key_mode.replace("-", "_") if body.job_key_mode else None
        if mode is not None and body.key is None:
            _invalid("job_key_mode needs a key: set key too", "key")
        spec = JobSpec(
            queue_name=body.queue,
            run_at=body.run_at,
            max_attempts=body.max_attempts,
            priority=body.priority,
            flags=tuple(dict.fromkeys(body.flags)) if body.flags else None,
            job_key=body.key,
            job_key_mode=mode,
        )
        job, notice = await utils.add_raw_job_noting(body.identifier, body.payload, spec)
        return json_response(m.AddedJobResponse(job=listed_job(job, _now()), warning=notice), 201)

    async def job_action() -> Response:
        body = await _read_body(m.JobActionRequest)
        action = body.action
        if action != "fail" and body.reason is not None:
            _invalid("reason only goes with the fail action", "reason")
        if action != "reschedule":
            for name in RESCHEDULE_FIELDS:
                if getattr(body, name) is not None:
                    _invalid(f"{name} only goes with the reschedule action", name)
        if action == "complete":
            jobs = await utils.complete_jobs(body.ids)
        elif action == "fail":
            reason = body.reason.strip() if body.reason else ""
            jobs = await utils.permanently_fail_jobs(body.ids, reason or DEFAULT_FAIL_REASON)
        elif action == "run-now":
            jobs = await utils.reschedule_jobs(body.ids, run_at=_now())
        else:
            if all(getattr(body, name) is None for name in RESCHEDULE_FIELDS):
                _invalid(
                    "reschedule needs at least one of run_at, priority, attempts or max_attempts",
                    "run_at",
                )
            jobs = await utils.reschedule_jobs(
                body.ids,
                run_at=body.run_at,
                priority=body.priority,
                attempts=body.attempts,
                max_attempts=body.max_attempts,
            )
        now = _now()
        return json_response(
            m.ActionResponse(
                action=action, count=len(jobs), jobs=[listed_job(job, now) for job in jobs]
            )
        )

    async def cancel_jobs() -> Response:
        body = await _read_body(m.CancelJobsRequest)
        reason = body.reason.strip() if body.reason else None
        results = await utils.cancel_jobs(body.ids, reason or None)
        return json_response(cancel_response(results))

    async def remove_by_key() -> Response:
        body = await _read_body(m.RemoveByKeyRequest)
        job = await utils.remove_job(body.key)
        return json_response(
            m.RemovedJobResponse(job=listed_job(job, _now()) if job is not None else None)
        )

    async def maintenance() -> Response:
        body = await _read_body(m.MaintenanceRequest)
        result: Any
        if isinstance(body, m.MigrateRequest):
            report = await utils.migrate()
            result = m.MigrateResponse(
                action="migrate",
                result=m.MigrateResult(migrated=True, applied=list(report.applied)),
            )
        elif isinstance(body, m.CleanupRequest):
            wanted = body.cleanup_tasks or [task.value for task in CleanupTask]
            done = await utils.cleanup([CleanupTask(name) for name in wanted])
            result = m.CleanupResponse(
                action="cleanup",
                result=m.CleanupResult(tasks=[task.value for task in done]),
            )
        elif isinstance(body, m.ForceUnlockRequest):
            worker_ids = list(dict.fromkeys(body.worker_ids))
            await utils.force_unlock_workers(worker_ids)
            result = m.ForceUnlockResponse(
                action="force-unlock", result=m.ForceUnlockResult(worker_ids=worker_ids)
            )
        else:
            options: dict[str, Any] = {"dry_run": body.dry_run}
            if body.sweep_threshold_secs is not None:
                options["sweep_threshold"] = body.sweep_threshold_secs
            if body.recovery_delay_secs is not None:
                options["recovery_delay"] = body.recovery_delay_secs
            sweep = await utils.sweep_stale_workers(**options)
            result = m.SweepResponse(
                action="sweep-stale-workers",
                result=m.SweepResult(
                    dry_run=sweep.dry_run,
                    worker_ids=list(sweep.worker_ids),
                    job_ids=list(sweep.job_ids),
                    recovered_jobs=sweep.recovered_jobs,
                ),
            )
        return json_response(result)

    routes: list[tuple[str, str, Any, list[str]]] = [
        ("/api/session", "session", session, ["GET"]),
        ("/api/overview", "overview", overview, ["GET"]),
        ("/api/jobs", "list_jobs", list_jobs, ["GET"]),
        ("/api/jobs", "add_job", add_job, ["POST"]),
        ("/api/jobs/action", "job_action", job_action, ["POST"]),
        ("/api/jobs/cancel", "cancel_jobs", cancel_jobs, ["POST"]),
        ("/api/jobs/remove-by-key", "remove_by_key", remove_by_key, ["POST"]),
        ("/api/jobs/<job_id>", "job_detail", job_detail, ["GET"]),
        ("/api/limits", "limits", limits, ["GET"]),
        ("/api/history", "list_history", list_history, ["GET"]),
        ("/api/history/stats", "history_stats", history_stats, ["GET"]),
        ("/api/maintenance", "maintenance", maintenance, ["POST"]),
        ("/api/openapi.json", "openapi", openapi, ["GET"]),
    ]
    for rule, endpoint, view, methods in routes:
        app.add_url_rule(rule, endpoint, view, methods=methods)


def _from_gw_error(error: GwError) -> ApiError:
    message = error.message
    if isinstance(error, (ConfigurationError, PayloadError)):
        return ApiError(422, "validation", message, _guess_field(message))
    if isinstance(error, HookError):
        return ApiError(409, "conflict", message)
    if isinstance(error, DatabaseError):
        if message.startswith("the database did not schedule the job"):
            return ApiError(409, "conflict", message, "key")
        logger.warning("admin request failed on the database: %s", message)
        return ApiError(503, "database", message)
    logger.error("admin request failed: %s", message)
    return ApiError(500, "internal", message)


_SPEC_FIELDS = (
    ("queue_name", "queue"),
    ("job_key_mode", "job_key_mode"),
    ("job_key", "key"),
    ("run_at", "run_at"),
    ("max_attempts", "max_attempts"),
    ("priority", "priority"),
    ("flags", "flags"),
    ("attempts", "attempts"),
    ("task identifier", "identifier"),
    ("job ids", "ids"),
    ("the cancel reason", "reason"),
    ("worker ids", "worker_ids"),
)


def _guess_field(message: str) -> str:
    """Name the request field a gw validation message is about."""
    for prefix, field in _SPEC_FIELDS:
        if message.startswith(prefix):
            return field
    return "payload" if "payload" in message else "body"
