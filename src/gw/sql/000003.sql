-- gw migration 3: jobs.queue_name becomes nullable (queue-less jobs run in parallel)
--! breaking-change

alter table :GRAPHILE_WORKER_SCHEMA.jobs alter column queue_name drop not null;

-- Same as migration 2, except that a keyed update now takes the new queue_name as given.
create or replace function :GRAPHILE_WORKER_SCHEMA.add_job(
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
          queue_name = excluded.queue_name,
          max_attempts = excluded.max_attempts,
          run_at = excluded.run_at,
          attempts = 0,
          last_error = null
      where j.locked_at is null
    returning * into v_result;

    if v_result.id is not null then
      return v_result;
    end if;

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

-- Jobs without a queue are locked on their own; queued jobs also need their queue.
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

  select j.queue_name, j.id
    into v_queue, v_job_id
    from :GRAPHILE_WORKER_SCHEMA.jobs as j
   where (j.locked_at is null or j.locked_at < v_now - job_expiry)
     and (
       j.queue_name is null
       or exists (
         select 1
           from :GRAPHILE_WORKER_SCHEMA.job_queues as q
          where q.queue_name = j.queue_name
            and (q.locked_at is null or q.locked_at < v_now - job_expiry)
            for update skip locked
       )
     )
     and j.run_at <= v_now
     and j.attempts < j.max_attempts
     and (task_identifiers is null or j.task_identifier = any(task_identifiers))
   order by j.priority, j.run_at, j.id
   limit 1
   for update skip locked;

  if v_job_id is null then
    return null;
  end if;

  if v_queue is not null then
    update :GRAPHILE_WORKER_SCHEMA.job_queues as q
       set locked_by = worker_id, locked_at = v_now
     where q.queue_name = v_queue;
  end if;

  update :GRAPHILE_WORKER_SCHEMA.jobs as j
     set attempts = j.attempts + 1,
         locked_by = worker_id,
         locked_at = v_now
   where j.id = v_job_id
  returning * into v_result;

  return v_result;
end;
$fn$;

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

  if v_result.queue_name is not null then
    update :GRAPHILE_WORKER_SCHEMA.job_queues as q
       set locked_by = null, locked_at = null
     where q.queue_name = v_result.queue_name
       and q.locked_by = worker_id;
  end if;

  return v_result;
end;
$fn$;

create or replace function :GRAPHILE_WORKER_SCHEMA.complete_job(worker_id text, job_id bigint)
returns :GRAPHILE_WORKER_SCHEMA.jobs
language plpgsql as $fn$
declare
  v_result :GRAPHILE_WORKER_SCHEMA.jobs;
begin
  delete from :GRAPHILE_WORKER_SCHEMA.jobs as j
   where j.id = job_id
  returning * into v_result;

  if v_result.queue_name is not null then
    update :GRAPHILE_WORKER_SCHEMA.job_queues as q
       set locked_by = null, locked_at = null
     where q.queue_name = v_result.queue_name
       and q.locked_by = worker_id;
  end if;

  return v_result;
end;
$fn$;

-- The queue-count triggers now ignore jobs without a queue.
drop trigger _500_increase_job_queue_count on :GRAPHILE_WORKER_SCHEMA.jobs;
drop trigger _500_decrease_job_queue_count on :GRAPHILE_WORKER_SCHEMA.jobs;
drop trigger _500_increase_job_queue_count_update on :GRAPHILE_WORKER_SCHEMA.jobs;
drop trigger _500_decrease_job_queue_count_update on :GRAPHILE_WORKER_SCHEMA.jobs;

create trigger _500_increase_job_queue_count
  after insert on :GRAPHILE_WORKER_SCHEMA.jobs
  for each row when (new.queue_name is not null)
  execute procedure :GRAPHILE_WORKER_SCHEMA.jobs__increase_job_queue_count();
create trigger _500_decrease_job_queue_count
  after delete on :GRAPHILE_WORKER_SCHEMA.jobs
  for each row when (old.queue_name is not null)
  execute procedure :GRAPHILE_WORKER_SCHEMA.jobs__decrease_job_queue_count();
create trigger _500_increase_job_queue_count_update
  after update of queue_name on :GRAPHILE_WORKER_SCHEMA.jobs
  for each row when (new.queue_name is distinct from old.queue_name and new.queue_name is not null)
  execute procedure :GRAPHILE_WORKER_SCHEMA.jobs__increase_job_queue_count();
create trigger _500_decrease_job_queue_count_update
  after update of queue_name on :GRAPHILE_WORKER_SCHEMA.jobs
  for each row when (new.queue_name is distinct from old.queue_name and old.queue_name is not null)
  execute procedure :GRAPHILE_WORKER_SCHEMA.jobs__decrease_job_queue_count();
