-- gw track 0001: worker heartbeat table and crashed-worker recovery functions (same layout as graphile_worker_rs migration 20)
--
-- Idempotent: safe on a schema where graphile_worker_rs already created these
-- objects (same names, signatures, languages and return types, so CREATE OR
-- REPLACE keeps the catalog as it was) and safe to run twice. Never touches
-- the migrations table.

-- Serialise concurrent runs of the gw track (CREATE ... IF NOT EXISTS is not
-- race-free): two-int advisory key ("GWMG", "TRK1"), distinct from RS's sweep lock.
select pg_advisory_xact_lock(1196903751, 1414679345);

create table if not exists :GRAPHILE_WORKER_SCHEMA._private_gw_migrations (
  id int primary key,
  ts timestamptz not null default now()
);

-- One row per live locker id (the value written into locked_by). No RLS, as in RS.
create table if not exists :GRAPHILE_WORKER_SCHEMA._private_workers (
  id text primary key,
  last_heartbeat_at timestamptz not null,
  started_at timestamptz not null default now(),
  metadata jsonb
);

create index if not exists _private_workers_last_heartbeat_at_idx
  on :GRAPHILE_WORKER_SCHEMA._private_workers (last_heartbeat_at);

-- Register or refresh a worker; a null metadata keeps the stored one.
create or replace function :GRAPHILE_WORKER_SCHEMA.worker_heartbeat(
  worker_id text,
  metadata json default null
) returns void
language sql as $fn$
  insert into :GRAPHILE_WORKER_SCHEMA._private_workers as w (id, last_heartbeat_at, metadata)
  values ($1, now(), $2::jsonb)
  on conflict (id) do update
     set last_heartbeat_at = now(),
         metadata = coalesce(excluded.metadata, w.metadata);
$fn$;

create or replace function :GRAPHILE_WORKER_SCHEMA.worker_deregister(worker_id text)
returns void
language sql as $fn$
  delete from :GRAPHILE_WORKER_SCHEMA._private_workers as w where w.id = $1;
$fn$;

-- Workers whose last heartbeat is older than the threshold.
create or replace function :GRAPHILE_WORKER_SCHEMA.list_stale_workers(stale_threshold interval)
returns table (worker_id text)
language sql as $fn$
  select w.id
    from :GRAPHILE_WORKER_SCHEMA._private_workers as w
   where w.last_heartbeat_at < now() - $1;
$fn$;

-- Lockers (of jobs or queues) that never heartbeat and hold a lock older than the threshold.
create or replace function :GRAPHILE_WORKER_SCHEMA.list_orphan_locked_workers(stale_threshold interval)
returns table (worker_id text)
language sql as $fn$
  select distinct held.locked_by
    from (
      select j.locked_by, j.locked_at
        from :GRAPHILE_WORKER_SCHEMA._private_jobs as j
       where j.locked_by is not null
      union all
      select q.locked_by, q.locked_at
        from :GRAPHILE_WORKER_SCHEMA._private_job_queues as q
       where q.locked_by is not null
    ) as held
   where held.locked_at < now() - $1
     and not exists (
       select 1 from :GRAPHILE_WORKER_SCHEMA._private_workers as w where w.id = held.locked_by
     );
$fn$;

-- Give the jobs of dead lockers back: the interrupted attempt does not count,
-- run_at is pushed to at least now() + recovery_delay. Returns the number of jobs.
create or replace function :GRAPHILE_WORKER_SCHEMA.recover_dead_worker_jobs(
  worker_ids text[],
  recovery_delay interval default interval '0 seconds'
) returns integer
language plpgsql as $fn$
declare
  v_count integer;
begin
  update :GRAPHILE_WORKER_SCHEMA._private_jobs as j
     set attempts = greatest(0, j.attempts - 1),
         locked_by = null,
         locked_at = null,
         run_at = greatest(j.run_at, now() + recover_dead_worker_jobs.recovery_delay),
         last_error = 'Job recovered after worker interruption',
         updated_at = now()
   where j.locked_by = any(recover_dead_worker_jobs.worker_ids);
  get diagnostics v_count = row_count;

  update :GRAPHILE_WORKER_SCHEMA._private_job_queues as q
     set locked_by = null, locked_at = null
   where q.locked_by = any(recover_dead_worker_jobs.worker_ids);

  return v_count;
end;
$fn$;

create or replace function :GRAPHILE_WORKER_SCHEMA.delete_stale_workers(worker_ids text[])
returns void
language sql as $fn$
  delete from :GRAPHILE_WORKER_SCHEMA._private_workers as w where w.id = any($1);
$fn$;

insert into :GRAPHILE_WORKER_SCHEMA._private_gw_migrations (id) values (1)
on conflict (id) do nothing;
