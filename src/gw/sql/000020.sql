-- gw migration 20: add_job/add_jobs insert only missing task identifiers and queue names (no wasted identity values)

create or replace function :GRAPHILE_WORKER_SCHEMA.add_job(
  identifier text,
  payload json default null,
  queue_name text default null,
  run_at timestamptz default null,
  max_attempts integer default null,
  job_key text default null,
  priority integer default null,
  flags text[] default null,
  job_key_mode text default 'replace'
) returns :GRAPHILE_WORKER_SCHEMA._private_jobs
language plpgsql as $fn$
declare
  v_result :GRAPHILE_WORKER_SCHEMA._private_jobs;
  v_max_attempts smallint;
  v_priority smallint;
  v_task_id int;
  v_queue_id int;
  v_flags jsonb;
begin
  if add_job.job_key is null
     or add_job.job_key_mode is null
     or add_job.job_key_mode in ('replace', 'preserve_run_at') then
    -- Exactly what add_jobs does for a one-element array, written out with
    -- scalar parameters: PL/pgSQL can then reuse generic plans instead of
    -- re-planning the array statements on every call (several times faster).
    -- The casts come first, as in the job_spec row built for add_jobs, so an
    -- out-of-range value fails before anything (even an identity value) is used.
    v_max_attempts := add_job.max_attempts::smallint;
    v_priority := add_job.priority::smallint;

    insert into :GRAPHILE_WORKER_SCHEMA._private_tasks (identifier)
    select add_job.identifier
     where not exists (select 1 from :GRAPHILE_WORKER_SCHEMA._private_tasks as known where known.identifier = add_job.identifier)
    on conflict do nothing;

    if add_job.queue_name is not null then
      insert into :GRAPHILE_WORKER_SCHEMA._private_job_queues (queue_name)
      select add_job.queue_name
       where not exists (select 1 from :GRAPHILE_WORKER_SCHEMA._private_job_queues as known where known.queue_name = add_job.queue_name)
      on conflict do nothing;
    end if;

    if add_job.job_key is not null then
      update :GRAPHILE_WORKER_SCHEMA._private_jobs as j
         set key = null,
             attempts = j.max_attempts,
             updated_at = now()
       where j.is_available is not true
         and j.key = add_job.job_key;
    end if;

    perform pg_notify('jobs:insert', '{"r":' || random() || ',"count":1}');

    -- Look the ids up first and insert plain values: statements whose plan
    -- does not depend on which parameters are null stay on generic plans.
    select t.id into v_task_id
      from :GRAPHILE_WORKER_SCHEMA._private_tasks as t
     where t.identifier = add_job.identifier;
    if v_task_id is null then
      return null;  -- the task row vanished concurrently: nothing scheduled, as add_jobs
    end if;
    if add_job.queue_name is not null then
      select q.id into v_queue_id
        from :GRAPHILE_WORKER_SCHEMA._private_job_queues as q
       where q.queue_name = add_job.queue_name;
    end if;
    if add_job.flags is not null then
      select jsonb_object_agg(f.name, true) into v_flags from unnest(add_job.flags) as f(name);
    end if;

    insert into :GRAPHILE_WORKER_SCHEMA._private_jobs as j
      (job_queue_id, task_id, payload, run_at, max_attempts, key, priority, flags)
    values (
      v_queue_id,
      v_task_id,
      coalesce(add_job.payload, '{}'::json),
      coalesce(add_job.run_at, now()),
      coalesce(v_max_attempts, 25),
      add_job.job_key,
      coalesce(v_priority, 0),
      v_flags
    )
    on conflict (key) do update
       set job_queue_id = excluded.job_queue_id,
           task_id = excluded.task_id,
           payload = case
                       when json_typeof(j.payload) = 'array' and json_typeof(excluded.payload) = 'array'
                         then (j.payload::jsonb || excluded.payload::jsonb)::json
                       else excluded.payload
                     end,
           max_attempts = excluded.max_attempts,
           run_at = case
                      when add_job.job_key_mode = 'preserve_run_at' and j.attempts = 0 then j.run_at
                      else excluded.run_at
                    end,
           priority = excluded.priority,
           revision = j.revision + 1,
           flags = excluded.flags,
           attempts = 0,
           last_error = null,
           updated_at = now()
     where j.locked_at is null
    returning * into v_result;
    return v_result;
  end if;

  if add_job.job_key_mode <> 'unsafe_dedupe' then
    raise exception 'Invalid job_key_mode value, expected ''replace'', ''preserve_run_at'' or ''unsafe_dedupe''.'
      using errcode = 'GWBKM';
  end if;

  -- unsafe_dedupe: an existing job with this key wins, whatever its state.
  insert into :GRAPHILE_WORKER_SCHEMA._private_tasks (identifier)
  select add_job.identifier
   where not exists (select 1 from :GRAPHILE_WORKER_SCHEMA._private_tasks as known where known.identifier = add_job.identifier)
  on conflict do nothing;

  if add_job.queue_name is not null then
    insert into :GRAPHILE_WORKER_SCHEMA._private_job_queues (queue_name)
    select add_job.queue_name
     where not exists (select 1 from :GRAPHILE_WORKER_SCHEMA._private_job_queues as known where known.queue_name = add_job.queue_name)
    on conflict do nothing;
  end if;

  insert into :GRAPHILE_WORKER_SCHEMA._private_jobs as j
    (job_queue_id, task_id, payload, run_at, max_attempts, key, priority, flags)
  select q.id,
         t.id,
         coalesce(add_job.payload, '{}'::json),
         coalesce(add_job.run_at, now()),
         coalesce(add_job.max_attempts::smallint, 25::smallint),
         add_job.job_key,
         coalesce(add_job.priority::smallint, 0::smallint),
         (select jsonb_object_agg(f.name, true) from unnest(add_job.flags) as f(name))
    from :GRAPHILE_WORKER_SCHEMA._private_tasks as t
    left join :GRAPHILE_WORKER_SCHEMA._private_job_queues as q on q.queue_name = add_job.queue_name
   where t.identifier = add_job.identifier
  on conflict (key) do update
     set revision = j.revision + 1,
         updated_at = now()
  returning * into v_result;

  -- Only a freshly inserted job (revision 0) is news for the workers.
  if v_result.revision = 0 then
    perform pg_notify('jobs:insert', '{"r":' || random() || ',"count":1}');
  end if;

  return v_result;
end;
$fn$;

create or replace function :GRAPHILE_WORKER_SCHEMA.add_jobs(
  specs :GRAPHILE_WORKER_SCHEMA.job_spec[],
  job_key_preserve_run_at boolean default false
) returns setof :GRAPHILE_WORKER_SCHEMA._private_jobs
language plpgsql as $fn$
begin
  -- Register only identifiers and queue names that are new (in order of first
  -- mention), so that adding jobs does not spend identity values on inserts that
  -- would conflict anyway.
  insert into :GRAPHILE_WORKER_SCHEMA._private_tasks (identifier)
  select wanted.identifier
    from (select s.identifier, min(s.ordinality) as first_seen
            from unnest(specs) with ordinality as s
           group by s.identifier) as wanted
    left join :GRAPHILE_WORKER_SCHEMA._private_tasks as known on known.identifier = wanted.identifier
   where known.id is null
   order by wanted.first_seen
  on conflict do nothing;

  insert into :GRAPHILE_WORKER_SCHEMA._private_job_queues (queue_name)
  select wanted.queue_name
    from (select s.queue_name, min(s.ordinality) as first_seen
            from unnest(specs) with ordinality as s
           where s.queue_name is not null
           group by s.queue_name) as wanted
    left join :GRAPHILE_WORKER_SCHEMA._private_job_queues as known on known.queue_name = wanted.queue_name
   where known.id is null
   order by wanted.first_seen
  on conflict do nothing;

  -- A job holding one of the keys that is running or permanently failed is
  -- detached (key cleared, no more retries); a fresh job takes the key below.
  update :GRAPHILE_WORKER_SCHEMA._private_jobs as j
     set key = null,
         attempts = j.max_attempts,
         updated_at = now()
   where j.is_available is not true
     and j.key in (select s.job_key from unnest(specs) as s where s.job_key is not null);

  -- Wake workers: {"r":<random>,"count":<number of specs>} (an upper bound when keys conflict).
  perform pg_notify('jobs:insert', '{"r":' || random() || ',"count":' || array_length(specs, 1) || '}');

  return query
  insert into :GRAPHILE_WORKER_SCHEMA._private_jobs as j
    (job_queue_id, task_id, payload, run_at, max_attempts, key, priority, flags)
  select q.id,
         t.id,
         coalesce(s.payload, '{}'::json),
         coalesce(s.run_at, now()),
         coalesce(s.max_attempts, 25),
         s.job_key,
         coalesce(s.priority, 0),
         (select jsonb_object_agg(f.name, true) from unnest(s.flags) as f(name))
    from unnest(specs) with ordinality as s
    join :GRAPHILE_WORKER_SCHEMA._private_tasks as t on t.identifier = s.identifier
    left join :GRAPHILE_WORKER_SCHEMA._private_job_queues as q on q.queue_name = s.queue_name
   order by s.ordinality
  on conflict (key) do update
     set job_queue_id = excluded.job_queue_id,
         task_id = excluded.task_id,
         payload = case
                     when json_typeof(j.payload) = 'array' and json_typeof(excluded.payload) = 'array'
                       then (j.payload::jsonb || excluded.payload::jsonb)::json
                     else excluded.payload
                   end,
         max_attempts = excluded.max_attempts,
         run_at = case
                    when job_key_preserve_run_at is true and j.attempts = 0 then j.run_at
                    else excluded.run_at
                  end,
         priority = excluded.priority,
         revision = j.revision + 1,
         flags = excluded.flags,
         attempts = 0,
         last_error = null,
         updated_at = now()
   where j.locked_at is null
  returning *;
end;
$fn$;
