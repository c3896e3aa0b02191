-- gw migration 5: jobs.revision and jobs.flags; add_job gains flags; get_job gains forbidden_flags

alter table :GRAPHILE_WORKER_SCHEMA.jobs add column revision int default 0 not null;
alter table :GRAPHILE_WORKER_SCHEMA.jobs add column flags jsonb default null;

drop function :GRAPHILE_WORKER_SCHEMA.add_job(text, json, text, timestamptz, int, text, int);

-- flags text[] is stored as a jsonb object {"<flag>": true, ...}; a keyed replace bumps revision.
create function :GRAPHILE_WORKER_SCHEMA.add_job(
  identifier text,
  payload json = null,
  queue_name text = null,
  run_at timestamptz = null,
  max_attempts int = null,
  job_key text = null,
  priority int = null,
  flags text[] = null
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
    raise exception 'Job maximum attempts must be at least 1' using errcode = 'GWBMA';
  end if;

  if add_job.job_key is not null then
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
          run_at = excluded.run_at,
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

drop function :GRAPHILE_WORKER_SCHEMA.get_job(text, text[], interval);

create function :GRAPHILE_WORKER_SCHEMA.get_job(
  worker_id text,
  task_identifiers text[] = null,
  job_expiry interval = interval '4 hours',
  forbidden_flags text[] = null
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
     and (forbidden_flags is null or (j.flags ?| forbidden_flags) is not true)
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
