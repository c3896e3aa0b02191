-- gw track 0002: control of running work (cancel requests, fleet-wide limits)
--
-- Idempotent and gw-only: Node and Rust workers never read these tables, and
-- nothing here touches Graphile's own tables, functions or triggers.

select pg_advisory_xact_lock(1196903751, 1414679345);

-- A request to cancel a job that a gw worker holds. The worker holding the job
-- (NOTIFY "gw:cancel", or its poll) deletes the row when it acts on it; the
-- row outlives a retry, so the job's next attempt on a gw worker is cancelled.
create table if not exists :GRAPHILE_WORKER_SCHEMA._private_gw_cancel_requests (
  job_id bigint primary key,
  reason text not null,
  requested_at timestamptz not null default now()
);

-- One row per limited key ('task:<identifier>' or 'queue:<queue name>'): the
-- limit as the last gw worker to start configured it, and the token bucket.
create table if not exists :GRAPHILE_WORKER_SCHEMA._private_gw_limits (
  key text primary key,
  rate float8,               -- tokens per second (null: no rate limit)
  burst float8,              -- bucket size
  max_concurrency int,       -- null: no concurrency limit
  tokens float8 not null default 0,
  updated_at timestamptz not null default now()
);

-- Jobs of a concurrency-limited key that a gw worker locked. A row counts while
-- its job is still locked by that worker: completion, failure and recovery of
-- a dead worker free the slot without touching this table.
create table if not exists :GRAPHILE_WORKER_SCHEMA._private_gw_slots (
  key text not null,
  job_id bigint not null,
  worker_id text not null,
  primary key (key, job_id)
);

insert into :GRAPHILE_WORKER_SCHEMA._private_gw_migrations (id) values (2)
on conflict (id) do nothing;
