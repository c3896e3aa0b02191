-- gw migration 7: add_job gains job_key_mode (replace, preserve_run_at, unsafe_dedupe); remove_job retires running jobs

drop function :GRAPHILE_WORKER_SCHEMA.add_job(text, json, text, timestamptz, int, text, int, text[]);

create function :GRAPHILE_WORKER_SCHEMA.add_job(
  identifier text,
  payload json = null,
  queue_name text = null,
  run_at timestamptz = null,
  max_attempts integer = null,
  job_key text = null,
  priority integer = null,
  flags text[] = null,
  job_key_mode text = 'replace'
) returns :GRAPHILE_WORKER_SCHEMA.jobs
language plpgsql volatile as $fn$
declare
  v_payload json := coalesce(add_job.payload, '{}'::json);
  v_run_at timestamptz := coalesce(add_job.run_at, now());
  v_max_attempts int := coalesce(add_job.max_attempts, 25);
  v_priority int := coalesce(add_job.priority, 0);
  v_flags jsonb := (select jsonb_object_agg(f.name, true) from unnest(add_job.flags) as f(name));
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
    raise exception 'Job maximum attempts must be at least 1.' using errcode = 'GWBMA';
  end if;

  if add_job.job_key is not null
     and (add_job.job_key_mode is null or add_job.job_key_mode in ('replace', 'preserve_run_at')) then
    -- Replace the waiting job with this key; a running one is retired below.
    insert into :GRAPHILE_WORKER_SCHEMA.jobs as j
      (task_identifier, payload, queue_name, run_at, max_attempts, key, priority, flags)
    values
      (add_job.identifier, v_payload, add_job.queue_name, v_run_at, v_max_attempts,
       add_job.job_key, v_priority, v_flags)
    on conflict (key) do update
      set task_identifier = excluded.task_identifier,
          payload = excluded.payload,
          queue_name = excluded.queue_name,
          max_attempts = excluded.max_attempts,
          run_at = case
                     when add_job.job_key_mode = 'preserve_run_at' and j.attempts = 0 then j.run_at
                     else excluded.run_at
                   end,
          priority = excluded.priority,
          revision = j.revision + 1,
          flags = excluded.flags,
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
  elsif add_job.job_key is not null and add_job.job_key_mode = 'unsafe_dedupe' then
    -- Keep whatever job already has this key (even a running one); only bump its revision.
    insert into :GRAPHILE_WORKER_SCHEMA.jobs as j
      (task_identifier, payload, queue_name, run_at, max_attempts, key, priority, flags)
    values
      (add_job.identifier, v_payload, add_job.queue_name, v_run_at, v_max_attempts,
       add_job.job_key, v_priority, v_flags)
    on conflict (key) do update
      set revision = j.revision + 1
    returning * into v_result;
    return v_result;
  elsif add_job.job_key is not null then
    raise exception 'Invalid job_key_mode value, expected ''replace'', ''preserve_run_at'' or ''unsafe_dedupe''.'
      using errcode = 'GWBKM';
  end if;

  insert into :GRAPHILE_WORKER_SCHEMA.jobs
    (task_identifier, payload, queue_name, run_at, max_attempts, key, priority, flags)
  values
    (add_job.identifier, v_payload, add_job.queue_name, v_run_at, v_max_attempts,
     add_job.job_key, v_priority, v_flags)
  returning * into v_result;

  return v_result;
end;
$fn$;

-- An unlocked job is deleted; a running one may finish, but loses its key and is never retried.
create or replace function :GRAPHILE_WORKER_SCHEMA.remove_job(job_key text)
returns :GRAPHILE_WORKER_SCHEMA.jobs
language plpgsql strict as $fn$
declare
  v_result :GRAPHILE_WORKER_SCHEMA.jobs;
begin
  delete from :GRAPHILE_WORKER_SCHEMA.jobs as j
   where j.key = remove_job.job_key
     and j.locked_at is null
  returning * into v_result;

  if v_result.id is null then
    update :GRAPHILE_WORKER_SCHEMA.jobs as j
       set attempts = j.max_attempts, key = null
     where j.key = remove_job.job_key
    returning * into v_result;
  end if;

  return v_result;
end;
$fn$;
