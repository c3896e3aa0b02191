-- gw track 0003: job history (opt-in: written only by gw workers run with History)
--
-- Idempotent and gw-only: Node and Rust workers never read or write it.

select pg_advisory_xact_lock(1196903751, 1414679345);

-- One row per finished attempt: completed, failed, permanently_failed,
-- cancelled, skipped or rescheduled (RetryAfter). Times come from the worker
-- (its clock), result is what the handler returned (JSON, size-capped).
create table if not exists :GRAPHILE_WORKER_SCHEMA._private_gw_history (
  id bigserial primary key,
  job_id bigint not null,
  task_identifier text not null,
  queue_name text,
  attempt int not null,
  max_attempts int not null,
  worker_id text not null,
  run_at timestamptz,
  started_at timestamptz not null,
  finished_at timestamptz not null,
  outcome text not null,
  error text,
  result jsonb,
  payload jsonb
);

create index if not exists _private_gw_history_finished_at_idx
  on :GRAPHILE_WORKER_SCHEMA._private_gw_history (finished_at);
create index if not exists _private_gw_history_job_id_idx
  on :GRAPHILE_WORKER_SCHEMA._private_gw_history (job_id, finished_at);

insert into :GRAPHILE_WORKER_SCHEMA._private_gw_migrations (id) values (3)
on conflict (id) do nothing;
