-- gw migration 4: add_job gains priority and input checks; admin functions complete_jobs, permanently_fail_jobs, reschedule_jobs

drop function :GRAPHILE_WORKER_SCHEMA.add_job(text, json, text, timestamptz, int, text);

-- Defaults are now applied inside the function so that callers may pass nulls.
create function :GRAPHILE_WORKER_SCHEMA.add_job(
  identifier text,
  payload json = null,
  queue_name text = null,
  run_at timestamptz = null,
  max_attempts int = null,
  job_key text = null,
  priority int = null
) returns :GRAPHILE_WORKER_SCHEMA.jobs
language plpgsql volatile as $fn$
declare
  v_payload json := coalesce(add_job.payload, '{}'::json);
  v_run_at timestamptz := coalesce(add_job.run_at, now());
  v_max_attempts int := coalesce(add_job.max_attempts, 25);
  v_priority int := coalesce(add_job.priority, 0);
  v_result :GRAPHILE_WORKER_SCHEMA.jobs;
begin
  if length(add_job.identifier) > 128 then
    raise exception 'Task identifier is too long (max length: 128).' using errcode = 'GWBID';
  end if;
  if add_job.queue_name is not null and length(add_job.queue_name) > 128 then
    raise exception 'Job queue name is too long (max length: 128).' using errcode = 'GWBQN';
  end if;
  if add_job.job_key is not null and length(add_job.job_key) > 512 then
    raise exception 'Job key is too long (max length: 512).' using errcode = 'GWBJK';
  end if;
  if add_job.max_attempts < 1 then
    raise exception 'Job maximum attempts must be at least 1' using errcode = 'GWBMA';
  end if;

  if add_job.job_key is not null then
    insert into :GRAPHILE_WORKER_SCHEMA.jobs as j
      (task_identifier, payload, queue_name, run_at, max_attempts, key, priority)
    values
      (add_job.identifier, v_payload, add_job.queue_name, v_run_at, v_max_attempts,
       add_job.job_key, v_priority)
    on conflict (key) do update
      set task_identifier = excluded.task_identifier,
          payload = excluded.payload,
          queue_name = excluded.queue_name,
          max_attempts = excluded.max_attempts,
          run_at = excluded.run_at,
          priority = excluded.priority,
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
    (task_identifier, payload, queue_name, run_at, max_attempts, key, priority)
  values
    (add_job.identifier, v_payload, add_job.queue_name, v_run_at, v_max_attempts,
     add_job.job_key, v_priority)
  returning * into v_result;

  return v_result;
end;
$fn$;

-- Admin helpers: they never touch a job that is locked (unless the lock is over 4 hours old).
create function :GRAPHILE_WORKER_SCHEMA.complete_jobs(job_ids bigint[])
returns setof :GRAPHILE_WORKER_SCHEMA.jobs
language sql volatile as $fn$
  delete from :GRAPHILE_WORKER_SCHEMA.jobs as j
   where j.id = any($1)
     and (j.locked_by is null or j.locked_at < now() - interval '4 hours')
  returning *;
$fn$;

create function :GRAPHILE_WORKER_SCHEMA.permanently_fail_jobs(job_ids bigint[], error_message text = null)
returns setof :GRAPHILE_WORKER_SCHEMA.jobs
language sql volatile as $fn$
  update :GRAPHILE_WORKER_SCHEMA.jobs as j
     set last_error = coalesce($2, 'Manually marked as failed'),
         attempts = j.max_attempts
   where j.id = any($1)
     and (j.locked_by is null or j.locked_at < now() - interval '4 hours')
  returning *;
$fn$;

create function :GRAPHILE_WORKER_SCHEMA.reschedule_jobs(
  job_ids bigint[],
  run_at timestamptz = null,
  priority int = null,
  attempts int = null,
  max_attempts int = null
) returns setof :GRAPHILE_WORKER_SCHEMA.jobs
language sql volatile as $fn$
  update :GRAPHILE_WORKER_SCHEMA.jobs as j
     set run_at = coalesce($2, j.run_at),
         priority = coalesce($3, j.priority),
         attempts = coalesce($4, j.attempts),
         max_attempts = coalesce($5, j.max_attempts)
   where j.id = any($1)
     and (j.locked_by is null or j.locked_at < now() - interval '4 hours')
  returning *;
$fn$;
