"""The OpenAPI 3.1 document of the admin API, generated from the msgspec models."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

import msgspec

from .. import __version__
from . import models as m
from .config import CSRF_HEADER

if TYPE_CHECKING:
    from .config import AdminAuth

__all__ = ("build_openapi", "openapi_document")

REF = "#/components/schemas/{name}"

_MODELS: tuple[Any, ...] = (
    m.ErrorResponse,
    m.SessionResponse,
    m.OverviewResponse,
    m.JobListQuery,
    m.JobListResponse,
    m.JobResponse,
    m.AddedJobResponse,
    m.RemovedJobResponse,
    m.AddJobRequest,
    m.JobActionRequest,
    m.ActionResponse,
    m.RemoveByKeyRequest,
    m.CancelJobsRequest,
    m.CancelJobsResponse,
    m.LimitsResponse,
    m.HistoryListQuery,
    m.HistoryListResponse,
    m.HistoryStatsQuery,
    m.HistoryStatsResponse,
    m.MaintenanceRequest,
    m.MigrateResponse,
    m.CleanupResponse,
    m.ForceUnlockResponse,
    m.SweepResponse,
)


def _ref(model: Any) -> dict[str, Any]:
    return {"$ref": REF.format(name=model.__name__)}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    text = {
        400: "Malformed request (bad JSON, query parameter or id); `field` names it.",
        401: "Missing or wrong credentials.",
        403: (
            "Missing or wrong CSRF token (`csrf`), the server is read-only (`read_only`), "
            "the Host is not one this server answers to (`host`) or a write came from "
            "another origin (`origin`)."
        ),
        404: "Not found.",
        409: "Conflict (e.g. the job key is held by a locked job).",
        413: "The request body is larger than 1 MiB.",
        422: "The body does not validate; `field` names the offending field.",
        503: "PostgreSQL cannot be reached or failed.",
    }
    return {str(s): _json(_ref(m.ErrorResponse), text[s]) for s in statuses}


def _query_params(components: dict[str, Any], model: Any) -> list[dict[str, Any]]:
    """The query parameters a ``*Query`` model describes (taken out of the components)."""
    query = components.pop(model.__name__)
    params = [
        {"name": name, "in": "query", "required": False, "schema": prop}
        for name, prop in query["properties"].items()
    ]
    for param in params:
        if param["name"] == "limit":
            param["description"] = (
                f"Rows per page; values above {m.MAX_LIST_LIMIT} are capped to {m.MAX_LIST_LIMIT}."
            )
    return params


_STATS_PARAMS = {
    "range": "How far back from `until`: a count and a unit (s, m, h, d, w); default 1h. "
    "Not with `since`.",
    "since": "Start of the range (instead of `range`).",
    "until": "End of the range; default now.",
    "bucket": "Bucket size: seconds (>= 1) or a duration like `range`; by default one "
    "that gives 60 to 120 buckets. At most 1000 buckets.",
    "task": "Only this task's attempts (the backlog is not narrowed).",
    "queue": "Only this queue's attempts (the backlog is not narrowed).",
}


def build_openapi(auth: AdminAuth) -> dict[str, Any]:
    """The OpenAPI document as a dict (security scheme follows ``auth``)."""
    schemas, components = msgspec.json.schema_components(_MODELS, ref_template=REF)
    by_model = dict(zip(_MODELS, schemas, strict=True))
    list_params = _query_params(components, m.JobListQuery)
    history_params = _query_params(components, m.HistoryListQuery)
    stats_params = _query_params(components, m.HistoryStatsQuery)
    for param in stats_params:
        param["description"] = _STATS_PARAMS[param["name"]]
    csrf = {
        "name": CSRF_HEADER,
        "in": "header",
        "required": True,
        "description": "The CSRF token from GET /api/session (or the page's gw-csrf-token meta).",
        "schema": {"type": "string"},
    }

    def write(
        summary: str, request: Any, ok: dict[str, Any], ok_status: int = 200
    ) -> dict[str, Any]:
        return {
            "summary": summary,
            "parameters": [csrf],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": request}},
            },
            "responses": {
                str(ok_status): _json(ok, "Done."),
                **_errors(400, 401, 403, 409, 413, 422, 503),
            },
        }

    def read(summary: str, ok: Any, *errors: int, **extra: Any) -> dict[str, Any]:
        return {
            "summary": summary,
            **extra,
            "responses": {"200": _json(_ref(ok), "OK."), **_errors(401, *errors)},
        }

    def static(summary: str, content_type: str) -> dict[str, Any]:
        return {
            "summary": summary,
            "security": [] if auth.mode != "basic" or content_type != "text/html" else None,
            "responses": {
                "200": {
                    "description": "OK.",
                    "content": {content_type: {"schema": {"type": "string"}}},
                }
            },
        }

    paths: dict[str, Any] = {
        "/": {"get": static("The admin page.", "text/html")},
        "/assets/admin.css": {"get": static("Stylesheet.", "text/css")},
        "/assets/admin.js": {"get": static("Page script.", "text/javascript")},
        "/favicon.ico": {"get": static("SVG favicon.", "image/svg+xml")},
        "/api/session": {
            "get": read("Schema, read-only state, CSRF token, auth summary.", m.SessionResponse)
        },
        "/api/overview": {
            "get": read("Job counts, queues, locked and active workers.", m.OverviewResponse, 503)
        },
        "/api/jobs": {
            "get": read(
                "List jobs, newest first.", m.JobListResponse, 400, 503, parameters=list_params
            ),
            "post": write("Add a job.", by_model[m.AddJobRequest], _ref(m.AddedJobResponse), 201),
        },
        "/api/jobs/{id}": {
            "get": read(
                "One job.",
                m.JobResponse,
                400,
                404,
                503,
                parameters=[
                    {
                        "name": "id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer", "minimum": 1, "maximum": m.BIGINT_MAX},
                    }
                ],
            )
        },
        "/api/jobs/action": {
            "post": write(
                "Complete, fail, run now or reschedule jobs (locked jobs are left alone).",
                by_model[m.JobActionRequest],
                _ref(m.ActionResponse),
            )
        },
        "/api/jobs/cancel": {
            "post": write(
                "Cancel jobs: waiting ones fail for good at once, ones a gw worker runs "
                "are stopped there; one result per job.",
                by_model[m.CancelJobsRequest],
                _ref(m.CancelJobsResponse),
            )
        },
        "/api/limits": {
            "get": read(
                "Fleet-wide rate and concurrency limits, and how much of each is in use.",
                m.LimitsResponse,
                503,
            )
        },
        "/api/history": {
            "get": read(
                "Finished attempts recorded by gw workers with gw.History, newest first; "
                "page with before_id.",
                m.HistoryListResponse,
                400,
                503,
                parameters=history_params,
            )
        },
        "/api/history/stats": {
            "get": read(
                "Attempts per time bucket (by outcome and by task), run-time and queue-wait "
                "percentiles, and backlog samples, for charts.",
                m.HistoryStatsResponse,
                400,
                503,
                parameters=stats_params,
            )
        },
        "/api/jobs/remove-by-key": {
            "post": write(
                "Remove the job with this key.",
                by_model[m.RemoveByKeyRequest],
                _ref(m.RemovedJobResponse),
            )
        },
        "/api/maintenance": {
            "post": write(
                "Migrate, clean up, force-unlock workers or sweep stale workers.",
                by_model[m.MaintenanceRequest],
                {
                    "oneOf": [
                        _ref(m.MigrateResponse),
                        _ref(m.CleanupResponse),
                        _ref(m.ForceUnlockResponse),
                        _ref(m.SweepResponse),
                    ]
                },
            )
        },
        "/api/openapi.json": {
            "get": {
                "summary": "This document.",
                "responses": {
                    "200": _json({"type": "object"}, "The OpenAPI 3.1 document."),
                    **_errors(401),
                },
            }
        },
    }
    for item in paths.values():
        for operation in item.values():
            if operation.get("security", ...) is None:
                del operation["security"]

    security_schemes: dict[str, Any] = {}
    if auth.mode == "basic":
        security_schemes["admin"] = {"type": "http", "scheme": "basic"}
    elif auth.mode == "bearer":
        security_schemes["admin"] = {"type": "http", "scheme": "bearer"}
    elif auth.mode == "header":
        security_schemes["admin"] = {"type": "apiKey", "in": "header", "name": auth.header_name}
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "gw admin API",
            "version": __version__,
            "description": "Inspect and manage Graphile Worker jobs. Every POST needs the "
            f"CSRF token in the {CSRF_HEADER} header.",
        },
        "paths": paths,
        "components": {"schemas": components},
    }
    if security_schemes:
        document["components"]["securitySchemes"] = security_schemes
        document["security"] = [{"admin": []}]
    return document


@cache
def _encoded(mode: str, header_name: str) -> bytes:
    from .config import AdminAuth

    auth = AdminAuth(mode=mode, secret="x", header_name=header_name)  # type: ignore[arg-type]
    return msgspec.json.encode(build_openapi(auth))


def openapi_document(auth: AdminAuth) -> bytes:
    """The encoded OpenAPI document (cached per auth mode)."""
    return _encoded(auth.mode, auth.header_name)
