-- gw migration 2: job keys (jobs.key), denormalised jobs.locked_at/locked_by, remove_job, keyed add_job

alter table :GRAPHILE_WORKER_SCHEMA.jobs add column key text unique check (length(key) > 0);
alter table :GRAPHILE_WORKER_SCHEMA.jobs add column locked_at timestamptz;
alter table :GRAPHILE_WORKER_SCHEMA.jobs add column locked_by text;

-- Copy the lock of every currently locked queue onto its jobs.
update :GRAPHILE_WORKER_SCHEMA.jobs as j
   set locked_at = q.locked_at,
       locked_by = q.locked_by
  from :GRAPHILE_WORKER_SCHEMA.job_queues as q
 where q.queue_name = j.queue_name
   and q.locked_at is not null;

drop function if exists :GRAPHILE_WORKER_SCHEMA.add_job(text, json, text, timestamptz, int);

-- With a key: update the waiting job that has this key (keeping its queue unless a
-- queue is given); if that job is already running, retire it and insert a new one.
create function :GRAPHILE_WORKER_SCHEMA.add_job(
  identifier text,
  payload json = '{}',
  queue_name text = null,
  run_at timestamptz = now(),
  max_attempts int = 25,
  job_key text = null
) returns :GRAPHILE_WORKER_SCHEMA.jobs
language plpgsql volatile as $fn$
declare
  v_result :GRAPHILE_WORKER_SCHEMA.jobs;
begin
  if add_job.job_key is not null then
    insert into :GRAPHILE_WORKER_SCHEMA.jobs as j
      (task_identifier, payload, queue_name, run_at, max_attempts, key)
    values
      (add_job.identifier, add_job.payload, add_job.queue_name, add_job.run_at,
       add_job.max_attempts, add_job.job_key)
    on conflict (key) do update
      set task_identifier = excluded.task_identifier,
          payload = excluded.payload,
          queue_name = coalesce(add_job.queue_name, j.queue_name),
          max_attempts = excluded.max_attempts,
          run_at = excluded.run_at,
          attempts = 0,
          last_error = null
      where j.locked_at is null
    returning * into v_result;

    if v_result.id is not null then
      return v_result;
    end if;

    -- The keyed job is running: let it finish without retries and free the key.
    update :GRAPHILE_WORKER_SCHEMA.jobs as j
       set key = null, attempts = j.max_attempts
     where j.key = add_job.job_key;
  end if;

  insert into :GRAPHILE_WORKER_SCHEMA.jobs
    (task_identifier, payload, queue_name, run_at, max_attempts, key)
  values
    (add_job.identifier, add_job.payload, add_job.queue_name, add_job.run_at,
     add_job.max_attempts, add_job.job_key)
  returning * into v_result;

  return v_result;
end;
$fn$;

create function :GRAPHILE_WORKER_SCHEMA.remove_job(job_key text)
returns :GRAPHILE_WORKER_SCHEMA.jobs
language sql strict volatile as $fn$
  delete from :GRAPHILE_WORKER_SCHEMA.jobs as j
   where j.key = $1
     and j.locked_at is null
  returning *;
$fn$;

create or replace function :GRAPHILE_WORKER_SCHEMA.get_job(
  worker_id text,
  task_identifiers text[] = null,
  job_expiry interval = interval '4 hours'
) returns :GRAPHILE_WORKER_SCHEMA.jobs
language plpgsql volatile as $fn$
declare
  v_now timestamptz := now();
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
   where (q.locked_at is null or q.locked_at < v_now - job_expiry)
     and j.run_at <= v_now
     and j.attempts < j.max_attempts
     and (task_identifiers is null or j.task_identifier = any(task_identifiers))
   order by j.priority, j.run_at, j.id
   limit 1
   for update of q skip locked;

  if v_queue is null then
    return null;
  end if;

  update :GRAPHILE_WORKER_SCHEMA.job_queues as q
     set locked_by = worker_id, locked_at = v_now
   where q.queue_name = v_queue;

  update :GRAPHILE_WORKER_SCHEMA.jobs as j
     set attempts = j.attempts + 1,
         locked_by = worker_id,
         locked_at = v_now
   where j.id = v_job_id
  returning * into v_result;

  return v_result;
end;
$fn$;

-- Only the worker that holds the lock may fail the job; unlocks job and queue.
create or replace function :GRAPHILE_WORKER_SCHEMA.fail_job(worker_id text, job_id bigint, error_message text)
returns :GRAPHILE_WORKER_SCHEMA.jobs
language plpgsql volatile strict as $fn$
declare
  v_result :GRAPHILE_WORKER_SCHEMA.jobs;
begin
  update :GRAPHILE_WORKER_SCHEMA.jobs as j
     set last_error = error_message,
         run_at = greatest(now(), j.run_at) + exp(least(j.attempts, 10)) * interval '1 second',
         locked_by = null,
         locked_at = null
   where j.id = job_id
     and j.locked_by = worker_id
  returning * into v_result;

  update :GRAPHILE_WORKER_SCHEMA.job_queues as q
     set locked_by = null, locked_at = null
   where q.queue_name = v_result.queue_name
     and q.locked_by = worker_id;

  return v_result;
end;
$fn$;
