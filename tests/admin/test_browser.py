"""Drive the admin page in headless Chromium (Playwright) against the real server.

Log in with Basic auth, see the jobs, filter, add a job, fail one, reschedule
one, cancel jobs (in bulk and from the detail drawer), read the fleet-wide
limits, and check the database after each step. Screenshots land in
``test-artifacts/admin/``. Skipped (with the reason printed) when Debian's
Chromium or the playwright package is missing.

The server runs on the test's event loop (asyncio or trio); Playwright's sync
API runs in a worker thread and reaches the database through
``anyio.from_thread``, so the same test works on both backends.
"""

from __future__ import annotations

import functools
import re
import shutil
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.from_thread
import pytest

import gw
from gw.admin import AdminAuth, AdminServerConfig, serve

from .conftest import PASSWORD, TOKEN, snapshot

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "admin"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
UI_TIMEOUT_MS = 15_000


def _skip(reason: str) -> None:
    print(f"SKIPPED browser test: {reason}")
    pytest.skip(reason)


def _chromium() -> str:
    """Debian's Chromium binary, or "" when it is missing."""
    return CHROMIUM if Path(CHROMIUM).exists() else (shutil.which("chromium") or "")


def _require_browser() -> None:
    if not _chromium():
        _skip(f"Chromium is not installed ({CHROMIUM}); `apt-get install chromium` enables this")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _skip("the playwright package is not installed (pip install playwright)")


async def _seed(utils: gw.WorkerUtils) -> dict[str, gw.Job]:
    return {
        "welcome": await utils.add_raw_job(
            "send_email", {"to": "ann@example.com"}, gw.JobSpec(queue_name="mailers")
        ),
        "digest": await utils.add_raw_job(
            "send_email", {"to": "bob@example.com"}, gw.JobSpec(queue_name="mailers")
        ),
        "index": await utils.add_raw_job("index_record", {"id": 1}),
        "reindex": await utils.add_raw_job("index_record", {"id": 2}, gw.JobSpec(priority=3)),
    }


async def _run_in_browser(
    config: AdminServerConfig, drive: Callable[..., list[str]], *args: Any
) -> list[str]:
    """Serve ``config`` on this loop and run ``drive(base_url, *args)`` in a thread."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    async with anyio.create_task_group() as tg:
        address = await tg.start(serve, config)
        problems: list[str] = await anyio.to_thread.run_sync(
            functools.partial(drive, f"http://{address}", *args), abandon_on_cancel=False
        )
        tg.cancel_scope.cancel()
    return problems


def _backend_name(anyio_backend: Any) -> str:
    return anyio_backend if isinstance(anyio_backend, str) else str(anyio_backend[0])


async def test_admin_page_in_chromium(utils: gw.WorkerUtils, anyio_backend: Any) -> None:
    _require_browser()
    jobs = await _seed(utils)
    config = AdminServerConfig(utils, listen="127.0.0.1:0", auth=AdminAuth.basic(password=PASSWORD))
    problems = await _run_in_browser(config, _drive, utils, jobs, _backend_name(anyio_backend))
    assert problems == []


async def test_token_sign_in_and_read_only_page(utils: gw.WorkerUtils, anyio_backend: Any) -> None:
    _require_browser()
    jobs = await _seed(utils)
    before = await snapshot(utils)
    config = AdminServerConfig(
        utils, listen="127.0.0.1:0", auth=AdminAuth.header(token=TOKEN), read_only=True
    )
    problems = await _run_in_browser(config, _drive_token, jobs, _backend_name(anyio_backend))
    # The one rejected sign-in is the only failed request.
    assert len(problems) == 1
    assert "401" in problems[0]
    assert await snapshot(utils) == before


GW_WORKER = "gw_worker_browser"
NODE_WORKER = "node_worker_1"


async def _seed_cancel_and_limits(utils: gw.WorkerUtils) -> dict[str, gw.Job]:
    """Waiting jobs, a job a gw worker runs, one a Node worker holds, and three limits."""
    jobs = {
        "welcome": await utils.add_raw_job("send_email", {"to": "ann@example.com"}),
        "digest": await utils.add_raw_job("send_email", {"to": "bob@example.com"}),
        "crawl": await utils.add_raw_job("index_record", {"id": 1}),
        "legacy": await utils.add_raw_job("node_task", {"id": 2}),
    }
    s = utils.schema
    pool = utils.pool
    await pool.execute(
        f'select {s}.worker_heartbeat(%s, \'{{"gw_version": "test"}}\'::json)', (GW_WORKER,)
    )
    for name, worker in (("crawl", GW_WORKER), ("legacy", NODE_WORKER)):
        await pool.execute(
            f"update {s}._private_jobs set locked_at = now(), locked_by = %s where id = %s",
            (worker, jobs[name].id),
        )
    await pool.execute(
        f"""
        insert into {s}._private_gw_limits (key, rate, burst, max_concurrency, tokens)
        values ('task:send_email', 20, 5, null, 5),
               ('queue:reports', null, null, 2, 0),
               ('task:index_record', 1.0 / 3600, 1, 3, 0.5)
        """
    )
    await pool.execute(
        f"insert into {s}._private_gw_slots (key, job_id, worker_id)"
        " values ('task:index_record', %s, %s)",
        (jobs["crawl"].id, GW_WORKER),
    )
    return jobs


async def test_cancel_and_limits_in_chromium(utils: gw.WorkerUtils, anyio_backend: Any) -> None:
    _require_browser()
    jobs = await _seed_cancel_and_limits(utils)
    config = AdminServerConfig(utils, listen="127.0.0.1:0", auth=AdminAuth.basic(password=PASSWORD))
    problems = await _run_in_browser(
        config, _drive_cancel, utils, jobs, _backend_name(anyio_backend)
    )
    assert problems == []


def _db(fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
    """Run a WorkerUtils call on the test's event loop from the browser thread."""
    return anyio.from_thread.run(functools.partial(fn, *args, **kwargs))


@contextmanager
def _page(problems: list[str], **context: Any) -> Iterator[Any]:
    """A fresh Chromium page; console errors and page errors go to ``problems``."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=UI_TIMEOUT_MS)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_chromium(), args=LAUNCH_ARGS, headless=True)
        try:
            page = browser.new_context(
                viewport={"width": 1400, "height": 1000}, timezone_id="UTC", **context
            ).new_page()
            page.on(
                "console",
                lambda msg: (
                    problems.append(f"console {msg.type}: {msg.text}")
                    if msg.type == "error"
                    else None
                ),
            )
            page.on("pageerror", lambda err: problems.append(f"page error: {err}"))
            yield page
        finally:
            browser.close()


def _shot(page: Any, name: str, backend: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}-{backend}.png"), full_page=True)


def _drive_token(base: str, jobs: dict[str, gw.Job], backend: str) -> list[str]:
    """Header-token sign-in on a read-only server: no write control is usable."""
    from playwright.sync_api import expect

    problems: list[str] = []
    with _page(problems) as page:
        tid = page.get_by_test_id
        page.goto(base + "/")
        expect(tid("auth-panel")).to_be_visible()
        expect(tid("read-only-badge")).to_be_visible()
        tid("token-input").fill("not-the-token")
        tid("token-submit").click()
        expect(tid("auth-error")).to_contain_text("Token rejected")
        _shot(page, "09-token-rejected", backend)
        tid("token-input").fill(TOKEN)
        tid("token-submit").click()
        expect(page.locator("#job-tbody tr")).to_have_count(4)
        expect(tid("auth-panel")).to_be_hidden()
        expect(tid("add-job-open")).to_be_disabled()
        expect(tid(f"job-select-{jobs['index'].id}")).to_be_disabled()
        expect(tid("maint-migrate")).to_be_disabled()
        expect(tid("action-cancel")).to_be_disabled()
        expect(tid("action-cancel")).to_be_hidden()
        # Reads still work: the Limits panel says that none is configured.
        expect(tid("limits-empty")).to_be_visible()
        expect(tid("limits-table")).to_be_hidden()
        expect(page.locator("#footer-openapi")).to_be_hidden()
        expect(tid("sign-out")).to_be_visible()
        _shot(page, "10-read-only", backend)
        tid("sign-out").click()
        expect(tid("auth-panel")).to_be_visible()
    return problems


def _drive(base: str, utils: gw.WorkerUtils, jobs: dict[str, gw.Job], backend: str) -> list[str]:
    """Basic auth, the full flow; returns console errors and page errors seen on the way."""
    from playwright.sync_api import expect

    problems: list[str] = []

    def shot(page: Any, name: str) -> None:
        _shot(page, name, backend)

    with _page(problems, http_credentials={"username": "admin", "password": PASSWORD}) as page:
        tid = page.get_by_test_id

        # 1. Log in (Basic credentials from the context) and see every job.
        response = page.goto(base + "/")
        assert response is not None
        assert response.status == 200
        rows = page.locator("#job-tbody tr")
        expect(rows).to_have_count(4)
        expect(tid("count-total")).to_have_text("4")
        expect(tid("count-ready")).to_have_text("4")
        expect(tid("schema-name")).to_have_text("graphile_worker")
        for job in jobs.values():
            expect(tid(f"job-row-{job.id}")).to_be_visible()
        shot(page, "01-jobs")

        # 2. Filter by task identifier.
        tid("filter-identifier").fill("send_email")
        tid("filter-identifier").press("Enter")
        expect(rows).to_have_count(2)
        expect(tid(f"job-row-{jobs['welcome'].id}")).to_be_visible()
        expect(tid(f"job-row-{jobs['index'].id}")).to_have_count(0)
        assert "identifier=send_email" in page.url
        shot(page, "02-filtered")
        tid("filter-clear").click()
        expect(rows).to_have_count(4)

        # 3. Add a job through the dialog.
        tid("add-job-open").click()
        expect(tid("add-job-dialog")).to_be_visible()
        tid("add-job-identifier").fill("resize_image")
        tid("add-job-payload").fill('{"image": 7, "sizes": [64, 128]}')
        tid("add-job-queue").fill("media")
        tid("add-job-priority").fill("5")
        tid("add-job-max-attempts").fill("3")
        tid("add-job-key").fill("img:7")
        tid("add-job-flags").fill("slow, gpu")
        shot(page, "03-add-job-dialog")
        tid("add-job-submit").click()
        expect(tid("add-job-dialog")).to_be_hidden()
        expect(rows).to_have_count(5)
        added = _db(utils.list_jobs, identifier="resize_image")
        [new] = added.jobs
        assert new.payload == {"image": 7, "sizes": [64, 128]}
        assert (new.queue_name, new.priority, new.max_attempts, new.key) == (
            "media",
            5,
            3,
            "img:7",
        )
        assert new.flag_names == ["gpu", "slow"]
        expect(tid(f"job-row-{new.id}")).to_be_visible()
        expect(tid("count-total")).to_have_text("5")
        # No worker registered resize_image on this database: a warning that stays.
        warning = page.locator('[data-testid="toast"][data-kind="warning"]')
        expect(warning).to_contain_text("no worker has registered task 'resize_image'")
        shot(page, "04-added")
        warning.get_by_test_id("toast-dismiss").click()
        expect(warning).to_have_count(0)

        # 4. Fail one job with a reason (confirmed in the in-page dialog).
        victim = jobs["digest"].id
        tid(f"job-select-{victim}").check()
        expect(tid("selection-count")).to_have_text("1 job selected")
        tid("action-fail-reason").fill("mailbox gone (from the browser test)")
        tid("action-fail").click()
        expect(tid("confirm-dialog")).to_be_visible()
        expect(tid("confirm-message")).to_contain_text("mailbox gone")
        shot(page, "05-confirm-fail")
        tid("confirm-ok").click()
        expect(tid(f"job-state-{victim}")).to_have_text("failed")
        failed = _db(utils.get_job, victim)
        assert failed is not None
        assert failed.last_error == "mailbox gone (from the browser test)"
        assert failed.attempts == failed.max_attempts
        expect(tid("count-failed")).to_have_text("1")
        untouched = _db(utils.get_job, jobs["welcome"].id)
        assert untouched is not None
        assert untouched.last_error is None
        shot(page, "06-failed")

        # 5. Reschedule another job: new priority and a run_at in the future.
        target = jobs["reindex"].id
        tid(f"job-select-{target}").check()
        tid("reschedule-run-at").fill("2031-01-02T03:04:05")
        tid("reschedule-priority").fill("42")
        tid("action-reschedule").click()
        expect(tid("confirm-dialog")).to_be_visible()
        tid("confirm-ok").click()
        expect(tid(f"job-state-{target}")).to_have_text("scheduled")
        moved = _db(utils.get_job, target)
        assert moved is not None
        assert moved.priority == 42
        assert moved.run_at == datetime(2031, 1, 2, 3, 4, 5, tzinfo=UTC)
        assert moved.attempts == 0
        expect(tid("count-scheduled")).to_have_text("1")
        shot(page, "07-rescheduled")

        # 6. The detail drawer shows the stored job.
        page.locator(f"[data-testid=job-row-{target}] td.cell-task").click()
        expect(tid("job-detail")).to_be_visible()
        expect(tid("job-detail-title")).to_have_text(f"Job #{target}")
        expect(tid("detail-field-priority")).to_have_text("42")
        expect(tid("job-detail-payload")).to_contain_text('"id": 2')
        shot(page, "08-detail")
    return problems


def _drive_cancel(
    base: str, utils: gw.WorkerUtils, jobs: dict[str, gw.Job], backend: str
) -> list[str]:
    """The Limits panel, a bulk cancel with a reason, then one from the detail drawer."""
    from playwright.sync_api import expect

    problems: list[str] = []

    def shot(page: Any, name: str) -> None:
        _shot(page, name, backend)

    with _page(problems, http_credentials={"username": "admin", "password": PASSWORD}) as page:
        tid = page.get_by_test_id
        page.goto(base + "/")
        expect(page.locator("#job-tbody tr")).to_have_count(4)

        # 1. The Limits panel lists each key with its rate, burst, tokens and use.
        expect(tid("limits-count")).to_have_text("3 limits")
        expect(tid("limits-empty")).to_be_hidden()
        rows = page.locator("#limits-tbody tr")
        expect(rows).to_have_count(3)
        expect(rows.nth(0)).to_have_attribute("data-testid", "limit-row-queue:reports")
        expect(tid("limit-rate-task:send_email")).to_have_text("20/s")
        expect(tid("limit-burst-task:send_email")).to_have_text("5")
        expect(tid("limit-tokens-task:send_email")).to_have_text("5")
        expect(tid("limit-max-task:send_email")).to_have_text("—")
        expect(tid("limit-running-task:send_email")).to_have_text("0")
        expect(tid("limit-rate-task:index_record")).to_have_text("1/h")
        expect(tid("limit-tokens-task:index_record")).to_have_text("0.5")
        expect(tid("limit-max-task:index_record")).to_have_text("3")
        expect(tid("limit-running-task:index_record")).to_have_text("1")
        expect(tid("limit-rate-queue:reports")).to_have_text("—")
        expect(tid("limit-max-queue:reports")).to_have_text("2")
        shot(page, "11-limits")

        # 2. Cancel three jobs at once, with a reason asked for in the dialog.
        welcome, crawl, legacy = jobs["welcome"].id, jobs["crawl"].id, jobs["legacy"].id
        for job_id in (welcome, crawl, legacy):
            tid(f"job-select-{job_id}").check()
        expect(tid("selection-count")).to_have_text("3 jobs selected")
        tid("action-cancel").click()
        expect(tid("confirm-dialog")).to_be_visible()
        expect(tid("confirm-title")).to_have_text("Cancel 3 jobs?")
        expect(tid("confirm-input")).to_be_focused()
        tid("confirm-input").fill("customer left (browser test)")
        shot(page, "12-confirm-cancel")
        tid("confirm-ok").click()
        outcome = page.locator('[data-testid="toast"][data-kind="warning"]')
        expect(outcome.get_by_test_id("toast-message")).to_have_text(
            f"1 cancelled, 1 cancelling (on worker {GW_WORKER}), "
            f"1 not cancellable (held by worker {NODE_WORKER})"
        )
        details = outcome.get_by_test_id("toast-details")
        expect(details).to_contain_text(f"#{welcome} send_email: cancelled")
        expect(details).to_contain_text(f"#{crawl} index_record: cancelling: {GW_WORKER}")
        expect(details).to_contain_text(f"#{legacy} node_task: not cancellable: held by")
        expect(tid(f"job-state-{welcome}")).to_have_text("failed")
        expect(tid("selection-count")).to_have_text("No jobs selected")
        shot(page, "13-cancelled")
        cancelled = _db(utils.get_job, welcome)
        assert cancelled is not None
        assert cancelled.last_error == "cancelled: customer left (browser test)"
        assert cancelled.attempts == cancelled.max_attempts
        still = _db(utils.get_job, crawl)
        assert still is not None
        assert (still.locked_by, still.last_error) == (GW_WORKER, None)
        requests = _db(
            utils.pool.fetch, f"select job_id from {utils.schema}._private_gw_cancel_requests"
        )
        assert [r["job_id"] for r in requests] == [crawl]
        left_alone = _db(utils.get_job, legacy)
        assert left_alone is not None
        assert (left_alone.locked_by, left_alone.last_error) == (NODE_WORKER, None)
        outcome.get_by_test_id("toast-dismiss").click()
        expect(outcome).to_have_count(0)

        # 3. Cancel one job from its detail drawer, without a reason.
        digest = jobs["digest"].id
        page.locator(f"[data-testid=job-row-{digest}] td.cell-task").click()
        expect(tid("job-detail-title")).to_have_text(f"Job #{digest}")
        expect(tid("detail-cancel")).to_be_enabled()
        tid("detail-cancel").click()
        expect(tid("confirm-title")).to_have_text("Cancel 1 job?")
        expect(tid("confirm-input")).to_have_value("")
        tid("confirm-ok").click()
        done = page.locator('[data-testid="toast"][data-kind="success"]')
        expect(done.get_by_test_id("toast-message")).to_have_text("1 cancelled")
        expect(tid("detail-state")).to_have_text("failed")
        expect(tid("job-detail-error")).to_have_text("cancelled: no reason given")
        expect(tid("detail-cancel")).to_be_disabled()
        shot(page, "14-detail-cancelled")
        stored = _db(utils.get_job, digest)
        assert stored is not None
        assert stored.last_error == "cancelled: no reason given"
    return problems


# --------------------------------------------------------------------------- history and charts

TOP_TASKS = ["send_email", "resize_image", "index_record", "rare_task_0", "rare_task_1"]
HOSTILE_ERROR = '<img src=x onerror="window.__pwned=1">mailbox gone'


async def _seed_history(utils: gw.WorkerUtils) -> dict[str, Any]:
    """An hour of attempts (a busy task, two others, eight rare ones), an hour of
    backlog samples, and a job whose last attempt failed with hostile text."""
    from tests.history_rows import Attempt, insert_backlog, insert_history

    now = datetime.now(UTC)
    doomed = await utils.add_raw_job("index_record", {"id": 77})
    await utils.permanently_fail_jobs([doomed.id], HOSTILE_ERROR)
    attempts = []
    for minute in range(40):
        at = now - timedelta(minutes=45 - minute)
        for k in range(3):
            attempts.append(
                Attempt("send_email", at + timedelta(seconds=k), duration=0.2 + 0.05 * k,
                        wait=0.5 + minute / 20, queue="mailers", job_id=1000 + 3 * minute + k,
                        result={"sent": True, "n": k})
            )  # fmt: skip
        if minute % 3 == 0:
            attempts.append(
                Attempt(
                    "resize_image", at, duration=2 + minute / 10, wait=3.0, job_id=2000 + minute
                )
            )
        if minute % 5 == 0:
            attempts.append(
                Attempt("index_record", at, "failed", duration=0.8, error="search timed out",
                        job_id=3000 + minute)
            )  # fmt: skip
    for n in range(8):
        attempts.append(
            Attempt(f"rare_task_{n}", now - timedelta(minutes=4 * n + 1), job_id=4000 + n)
        )
    attempts.append(
        Attempt("index_record", now - timedelta(minutes=2), "permanently_failed", duration=1.5,
                job_id=doomed.id, attempt=25, error=HOSTILE_ERROR,
                payload={"id": 77, "html": "<script>window.__pwned = 2</script>"})
    )  # fmt: skip
    ids = await insert_history(utils, attempts)
    await insert_backlog(
        utils,
        [
            (now - timedelta(minutes=59 - m), 10 + (m % 7) * 3, 5 + m // 10, 2 + m % 3, m // 20)
            for m in range(59)
        ],
    )
    return {"doomed": doomed, "ids": ids, "now": now}


async def test_history_and_charts_in_chromium(utils: gw.WorkerUtils, anyio_backend: Any) -> None:
    _require_browser()
    seeded = await _seed_history(utils)
    config = AdminServerConfig(utils, listen="127.0.0.1:0", auth=AdminAuth.basic(password=PASSWORD))
    problems = await _run_in_browser(
        config, _drive_history, utils, seeded, _backend_name(anyio_backend)
    )
    assert problems == []


async def test_history_views_without_any_history(utils: gw.WorkerUtils, anyio_backend: Any) -> None:
    _require_browser()
    config = AdminServerConfig(utils, listen="127.0.0.1:0", auth=AdminAuth.basic(password=PASSWORD))
    problems = await _run_in_browser(config, _drive_empty_history, _backend_name(anyio_backend))
    assert problems == []


def _names(locator: Any) -> list[str]:
    names: list[str] = locator.evaluate_all("els => els.map(e => e.dataset.name)")
    return names


def _int_attr(locator: Any, name: str) -> int:
    value = locator.get_attribute(name)
    assert value is not None, name
    return int(value)


def _drive_history(
    base: str, utils: gw.WorkerUtils, seeded: dict[str, Any], backend: str
) -> list[str]:
    """The charts (ranges, filters, live refresh and pausing) and the History view
    (paging, filters, the attempt drawer, hostile text shown as text)."""
    from playwright.sync_api import expect

    from tests.history_rows import Attempt, insert_history

    problems: list[str] = []
    doomed: gw.Job = seeded["doomed"]

    with _page(problems, http_credentials={"username": "admin", "password": PASSWORD}) as page:
        tid = page.get_by_test_id
        page.clock.install()  # the charts' 10 s refresh runs when the test says so
        page.goto(base + "/")

        # 1. Every chart draws the seeded hour.
        throughput = tid("chart-throughput").locator("svg")
        expect(throughput).to_have_attribute("data-bars", re.compile(r"^[1-9][0-9]*$"))
        assert page.locator("[data-testid=chart-throughput] rect.bar").count() > 40
        legend = tid("legend-throughput").get_by_test_id("legend-item")
        expect(legend).to_have_count(7)
        assert _names(legend) == [*TOP_TASKS, "rare_task_2", "other (5 tasks)"]
        assert _names(tid("legend-failures").get_by_test_id("legend-item")) == ["index_record"]
        assert _int_attr(tid("chart-failures").locator("svg"), "data-bars") == 9
        for chart in ("chart-duration", "chart-wait"):
            for line in ("p50", "p90", "p99"):
                path = tid(chart).locator(f"path.line[data-line={line}]")
                assert _int_attr(path, "data-points") > 30, (chart, line)
        for line in ("ready", "scheduled", "running", "failed"):
            path = tid("chart-backlog").locator(f"path.line[data-line={line}]")
            assert _int_attr(path, "data-points") >= 58, line
        expect(tid("chart-summary")).to_contain_text("attempts in the last hour")
        expect(tid("chart-summary")).to_contain_text("9 failed")
        expect(tid("chart-range-1h")).to_have_attribute("aria-pressed", "true")
        expect(tid("chart-empty")).to_have_count(0)
        tid("activity").screenshot(path=str(ARTIFACTS / f"15-activity-{backend}.png"))
        _shot(page, "15-page-with-activity", backend)

        # 2. Another range, and one task only.
        tid("chart-range-15m").click()
        expect(tid("chart-range-15m")).to_have_attribute("aria-pressed", "true")
        expect(tid("chart-summary")).to_contain_text("in the last 15 minutes")
        expect(tid("chart-throughput-sub")).to_contain_text("per 10 s")
        tid("chart-range-1h").click()
        expect(tid("chart-summary")).to_contain_text("in the last hour")
        tid("chart-task").fill("index_record")
        tid("chart-task").press("Enter")
        expect(tid("chart-summary")).to_contain_text("(task index_record)")
        assert _names(tid("legend-throughput").get_by_test_id("legend-item")) == ["index_record"]
        tid("chart-task").fill("")
        tid("chart-task").press("Enter")
        expect(tid("legend-throughput").get_by_test_id("legend-item")).to_have_count(7)

        # 3. Live refresh: a new task shows up after the next 10 s tick...
        _db(insert_history, utils, [Attempt("fresh_task", datetime.now(UTC), job_id=5000)] * 30)
        page.clock.fast_forward(11_000)
        expect(tid("legend-throughput").locator("[data-name=fresh_task]")).to_have_count(1)
        # ...and none while paused.
        live_switch = page.locator("label[for=chart-live]")
        live_switch.click()
        expect(tid("chart-live")).not_to_be_checked()
        seq = page.evaluate("window.gwAdmin.state.charts.seq")
        page.clock.fast_forward(35_000)
        assert page.evaluate("window.gwAdmin.state.charts.seq") == seq
        live_switch.click()
        expect(tid("chart-live")).to_be_checked()
        page.clock.fast_forward(11_000)
        assert page.evaluate("window.gwAdmin.state.charts.seq") > seq

        # 4. History: newest first, paged with before_id.
        tid("history").scroll_into_view_if_needed()
        rows = page.locator("#history-tbody tr")
        expect(rows).to_have_count(50)
        total = len(seeded["ids"]) + 30
        expect(tid("history-page-info")).to_have_text("Page 1 · 50 attempts · older ones available")
        expect(rows.first.locator("td.cell-task")).to_have_text("fresh_task")
        expect(tid("history-newer")).to_be_disabled()
        first_page_last = _int_attr(rows.last, "data-history-id")
        _shot(page, "16-history", backend)
        tid("history-older").click()
        expect(tid("history-page-info")).to_contain_text("Page 2 · 50 attempts")
        assert _int_attr(rows.first, "data-history-id") < first_page_last
        tid("history-older").click()
        tid("history-older").click()
        expect(tid("history-page-info")).to_have_text(f"Page 4 · {total - 150} attempts")
        expect(tid("history-older")).to_be_disabled()
        tid("history-newer").click()
        expect(tid("history-page-info")).to_contain_text("Page 3 · 50 attempts")
        tid("history-limit").select_option("200")
        expect(rows).to_have_count(total)
        expect(tid("history-page-info")).to_have_text(f"Page 1 · {total} attempts")

        # 5. Filters.
        tid("history-outcome").select_option("failed")
        expect(rows).to_have_count(8)
        for badge in page.locator("[data-testid^=history-outcome-]").all():
            expect(badge).to_have_text("failed")
        tid("history-task").fill("resize_image")
        tid("history-task").press("Enter")
        expect(tid("history-empty")).to_be_visible()
        expect(tid("history-empty-title")).to_have_text("No attempts match these filters")
        tid("history-clear").click()
        expect(rows).to_have_count(total)

        # 6. The attempt drawer: result, error and payload, hostile text as text.
        tid("history-outcome").select_option("permanently_failed")
        expect(rows).to_have_count(1)
        rows.first.locator("td.cell-task").click()
        expect(tid("history-detail")).to_be_visible()
        expect(tid("history-detail-title")).to_have_text(re.compile(r"^Attempt #\d+$"))
        expect(tid("history-detail-outcome")).to_have_text("permanently failed")
        expect(tid("history-field-job_id")).to_have_text(str(doomed.id))
        expect(tid("history-field-duration")).to_have_text("1.5 s")
        expect(tid("history-detail-error")).to_have_text(HOSTILE_ERROR)
        expect(tid("history-detail-payload")).to_contain_text("<script>window.__pwned = 2</script>")
        expect(tid("history-detail-result")).to_contain_text("No result")
        assert page.locator("#history-detail img, #history-detail script").count() == 0
        assert page.evaluate("window.__pwned") is None
        _shot(page, "17-history-detail", backend)

        # 7. From the attempt to its job, and from the job back to its attempts.
        tid("history-detail-job").click()
        expect(tid("history-detail")).to_be_hidden()
        expect(tid("job-detail-title")).to_have_text(f"Job #{doomed.id}")
        tid("detail-history").click()
        expect(tid("job-detail")).to_be_hidden()
        expect(tid("history-job")).to_have_value(str(doomed.id))
        expect(tid("history-outcome")).to_have_value("")
        expect(rows).to_have_count(1)
        rows.first.press("Enter")
        expect(tid("history-detail")).to_be_visible()
        page.keyboard.press("Escape")
        expect(tid("history-detail")).to_be_hidden()

        # A completed attempt's result, opened from the table.
        tid("history-clear").click()
        tid("history-task").fill("send_email")
        tid("history-task").press("Enter")
        expect(rows.first.locator("td.cell-result")).to_contain_text('"sent":true')
        rows.first.locator("td.cell-task").click()
        expect(tid("history-detail-result")).to_contain_text('"sent": true')
        expect(tid("history-field-queue_name")).to_have_text("mailers")
        tid("history-detail-attempts").click()
        expect(tid("history-detail")).to_be_hidden()
        expect(rows).to_have_count(1)
    return problems


def _drive_empty_history(base: str, backend: str) -> list[str]:
    """No worker ever ran with gw.History: the views say so, nothing fails."""
    from playwright.sync_api import expect

    problems: list[str] = []
    with _page(problems, http_credentials={"username": "admin", "password": PASSWORD}) as page:
        tid = page.get_by_test_id
        page.goto(base + "/")
        expect(tid("chart-summary")).to_contain_text("0 attempts in the last hour")
        expect(tid("chart-summary")).to_contain_text("history=gw.History()")
        expect(tid("chart-throughput").get_by_test_id("chart-empty")).to_have_text(
            "No attempts finished in this range"
        )
        expect(tid("chart-failures").get_by_test_id("chart-empty")).to_have_text(
            "No failures in this range"
        )
        expect(tid("chart-backlog").get_by_test_id("chart-empty")).to_contain_text(
            "No backlog samples"
        )
        expect(tid("chart-error")).to_be_hidden()
        expect(tid("legend-throughput").get_by_test_id("legend-item")).to_have_count(0)
        expect(tid("history-empty")).to_be_visible()
        expect(tid("history-empty-title")).to_have_text("No attempts recorded yet")
        expect(tid("history-empty-text")).to_contain_text("history=gw.History()")
        expect(tid("history-page-info")).to_have_text("No rows")
        expect(tid("history-older")).to_be_disabled()
        _shot(page, "18-empty-history", backend)
    return problems
