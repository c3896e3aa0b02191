-- gw track 0004: what the admin charts and tracing need beside the history
--
-- Idempotent and gw-only: Node and Rust workers never read or write these.

select pg_advisory_xact_lock(1196903751, 1414679345);

-- The queue's shape over time, sampled by gw workers run with gw.History:
-- one row per sample interval for the whole fleet (the first worker to reach
-- a slot writes it; the others find the row and skip the count).
create table if not exists :GRAPHILE_WORKER_SCHEMA._private_gw_backlog_samples (
  sampled_at timestamptz primary key,
  ready int not null,
  scheduled int not null,
  running int not null,
  failed int not null
);

-- W3C trace context of a job added while OpenTelemetry tracing was on, so the
-- attempt's consumer span links to the producer span of the add. Kept out of
-- the job row: Node and Rust workers see payloads, flags and keys.
create table if not exists :GRAPHILE_WORKER_SCHEMA._private_gw_trace_context (
  job_id bigint primary key,
  traceparent text not null,
  tracestate text,
  created_at timestamptz not null default now()
);

-- Wakes WorkerUtils.wait_for_result: once per statement that recorded a job's
-- final attempt, NOTIFY "gw:history" with the comma-separated job ids (empty
-- when they do not fit a notification: every waiter then looks again).
create or replace function :GRAPHILE_WORKER_SCHEMA._private_gw_history_notify()
returns trigger language plpgsql as $$
declare
  ids text;
begin
  select string_agg(job_id::text, ',') into ids from finished
  where outcome in ('completed', 'permanently_failed', 'cancelled', 'skipped');
  if ids is not null then
    perform pg_notify('gw:history', case when length(ids) <= 7000 then ids else '' end);
  end if;
  return null;
end;
$$;

drop trigger if exists _private_gw_history_notify
  on :GRAPHILE_WORKER_SCHEMA._private_gw_history;
create trigger _private_gw_history_notify
  after insert on :GRAPHILE_WORKER_SCHEMA._private_gw_history
  referencing new table as finished
  for each statement execute procedure :GRAPHILE_WORKER_SCHEMA._private_gw_history_notify();

insert into :GRAPHILE_WORKER_SCHEMA._private_gw_migrations (id) values (4)
on conflict (id) do nothing;
