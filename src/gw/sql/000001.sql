-- gw migration 1: initial job_queues/jobs tables, queue-count and notify triggers, add_job/get_job/complete_job/fail_job
--! breaking-change

-- One row per named queue that currently has jobs; the lock columns serialise a queue.
create table :GRAPHILE_WORKER_SCHEMA.job_queues (
  queue_name text not null primary key,
  job_count int not null,
  locked_at timestamptz,
  locked_by text
);
alter table :GRAPHILE_WORKER_SCHEMA.job_queues enable row level security;

create table :GRAPHILE_WORKER_SCHEMA.jobs (
  id bigserial primary key,
  queue_name text not null,
  task_identifier text not null,
  payload json default '{}'::json not null,
  priority int default 0 not null,
  run_at timestamptz default now() not null,
  attempts int default 0 not null,
  max_attempts int default 25 not null,
  last_error text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
alter table :GRAPHILE_WORKER_SCHEMA.jobs enable row level security;

-- Name chosen by PostgreSQL: jobs_priority_run_at_id_idx (dropped again by migration 6).
create index on :GRAPHILE_WORKER_SCHEMA.jobs (priority, run_at, id);

-- updated_at always moves forward, by at least one millisecond per update.
create function :GRAPHILE_WORKER_SCHEMA.tg__update_timestamp() returns trigger
language plpgsql as $fn$
begin
  new.updated_at := greatest(now(), old.updated_at + interval '1 millisecond');
  return new;
end;
$fn$;

create trigger _100_timestamps
  before update on :GRAPHILE_WORKER_SCHEMA.jobs
  for each row execute procedure :GRAPHILE_WORKER_SCHEMA.tg__update_timestamp();

-- job_queues.job_count follows the number of jobs per queue; empty queues are removed.
create function :GRAPHILE_WORKER_SCHEMA.jobs__decrease_job_queue_count() returns trigger
language plpgsql as $fn$
declare
  v_remaining int;
begin
  update :GRAPHILE_WORKER_SCHEMA.job_queues as q
     set job_count = q.job_count - 1
   where q.queue_name = old.queue_name
  returning q.job_count into v_remaining;

  if v_remaining <= 0 then
    delete from :GRAPHILE_WORKER_SCHEMA.job_queues as q
     where q.queue_name = old.queue_name
       and q.job_count <= 0;
  end if;
  return old;
end;
$fn$;

create function :GRAPHILE_WORKER_SCHEMA.jobs__increase_job_queue_count() returns trigger
language plpgsql as $fn$
begin
  insert into :GRAPHILE_WORKER_SCHEMA.job_queues as q (queue_name, job_count)
  values (new.queue_name, 1)
  on conflict (queue_name) do update set job_count = q.job_count + 1;
  return new;
end;
$fn$;

create trigger _500_increase_job_queue_count
  after insert on :GRAPHILE_WORKER_SCHEMA.jobs
  for each row execute procedure :GRAPHILE_WORKER_SCHEMA.jobs__increase_job_queue_count();
create trigger _500_decrease_job_queue_count
  after delete on :GRAPHILE_WORKER_SCHEMA.jobs
  for each row execute procedure :GRAPHILE_WORKER_SCHEMA.jobs__decrease_job_queue_count();
create trigger _500_increase_job_queue_count_update
  after update of queue_name on :GRAPHILE_WORKER_SCHEMA.jobs
  for each row execute procedure :GRAPHILE_WORKER_SCHEMA.jobs__increase_job_queue_count();
create trigger _500_decrease_job_queue_count_update
  after update of queue_name on :GRAPHILE_WORKER_SCHEMA.jobs
  for each row execute procedure :GRAPHILE_WORKER_SCHEMA.jobs__decrease_job_queue_count();

-- Wake listening workers once per inserting statement (empty payload in this era).
create function :GRAPHILE_WORKER_SCHEMA.tg_jobs__notify_new_jobs() returns trigger
language plpgsql as $fn$
begin
  perform pg_notify('jobs:insert', '');
  return new;
end;
$fn$;

create trigger _900_notify_worker
  after insert on :GRAPHILE_WORKER_SCHEMA.jobs
  for each statement execute procedure :GRAPHILE_WORKER_SCHEMA.tg_jobs__notify_new_jobs();

create function :GRAPHILE_WORKER_SCHEMA.add_job(
  identifier text,
  payload json = '{}',
  queue_name text = null,
  run_at timestamptz = now(),
  max_attempts int = 25
) returns :GRAPHILE_WORKER_SCHEMA.jobs
language sql as $fn$
  insert into :GRAPHILE_WORKER_SCHEMA.jobs (task_identifier, payload, queue_name, run_at, max_attempts)
  values ($1, $2, $3, $4, $5)
  returning *;
$fn$;

-- Lock the best runnable job of an unlocked (or expired) queue for worker_id.
create function :GRAPHILE_WORKER_SCHEMA.get_job(
  worker_id text,
  task_identifiers text[] = null,
  job_expiry interval = interval '4 hours'
) returns :GRAPHILE_WORKER_SCHEMA.jobs
language plpgsql as $fn$
declare
  v_job_id bigint;
  v_queue text;
  v_result :GRAPHILE_WORKER_SCHEMA.jobs;
begin
  if worker_id is null or length(worker_id) < 10 then
    raise exception 'invalid worker id';
  end if;

  select q.queue_name, j.id
    into v_queue, v_job_id
    from :GRAPHILE_WORKER_SCHEMA.jobs as j
    join :GRAPHILE_WORKER_SCHEMA.job_queues as q on q.queue_name = j.queue_name
   where (q.locked_at is null or q.locked_at < now() - job_expiry)
     and j.run_at <= now()
     and j.attempts < j.max_attempts
     and (task_identifiers is null or j.task_identifier = any(task_identifiers))
   order by j.priority, j.run_at, j.id
   limit 1
   for update of q skip locked;

  if v_queue is null then
    return null;
  end if;

  update :GRAPHILE_WORKER_SCHEMA.job_queues as q
     set locked_by = worker_id, locked_at = now()
   where q.queue_name = v_queue;

  update :GRAPHILE_WORKER_SCHEMA.jobs as j
     set attempts = j.attempts + 1
   where j.id = v_job_id
  returning * into v_result;

  return v_result;
end;
$fn$;

create function :GRAPHILE_WORKER_SCHEMA.complete_job(worker_id text, job_id bigint)
returns :GRAPHILE_WORKER_SCHEMA.jobs
language plpgsql as $fn$
declare
  v_result :GRAPHILE_WORKER_SCHEMA.jobs;
begin
  delete from :GRAPHILE_WORKER_SCHEMA.jobs as j
   where j.id = job_id
  returning * into v_result;

  update :GRAPHILE_WORKER_SCHEMA.job_queues as q
     set locked_by = null, locked_at = null
   where q.queue_name = v_result.queue_name
     and q.locked_by = worker_id;

  return v_result;
end;
$fn$;

-- Exponential back-off: exp(min(attempts, 10)) seconds after max(now, run_at).
create function :GRAPHILE_WORKER_SCHEMA.fail_job(worker_id text, job_id bigint, error_message text)
returns :GRAPHILE_WORKER_SCHEMA.jobs
language plpgsql as $fn$
declare
  v_result :GRAPHILE_WORKER_SCHEMA.jobs;
begin
  update :GRAPHILE_WORKER_SCHEMA.jobs as j
     set last_error = error_message,
         run_at = greatest(now(), j.run_at) + exp(least(j.attempts, 10)) * interval '1 second'
   where j.id = job_id
  returning * into v_result;

  update :GRAPHILE_WORKER_SCHEMA.job_queues as q
     set locked_by = null, locked_at = null
   where q.queue_name = v_result.queue_name
     and q.locked_by = worker_id;

  return v_result;
end;
$fn$;
