-- gw migration 16: rename the tables to _private_*; re-create the functions against the new names
--! breaking-change

alter table :GRAPHILE_WORKER_SCHEMA.jobs rename to _private_jobs;
alter table :GRAPHILE_WORKER_SCHEMA.job_queues rename to _private_job_queues;
alter table :GRAPHILE_WORKER_SCHEMA.tasks rename to _private_tasks;
alter table :GRAPHILE_WORKER_SCHEMA.known_crontabs rename to _private_known_crontabs;

-- Signatures are unchanged (the return row type followed the rename); only the
-- bodies need the new table names.
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
begin
  if add_job.job_key is null
     or add_job.job_key_mode is null
     or add_job.job_key_mode in ('replace', 'preserve_run_at') then
    select * into v_result
      from :GRAPHILE_WORKER_SCHEMA.add_jobs(
             array[row(add_job.identifier, add_job.payload, add_job.queue_name, add_job.run_at,
                       add_job.max_attempts::smallint, add_job.job_key, add_job.priority::smallint,
                       add_job.flags):::GRAPHILE_WORKER_SCHEMA.job_spec],
             add_job.job_key_mode = 'preserve_run_at')
     limit 1;
    return v_result;
  end if;

  if add_job.job_key_mode <> 'unsafe_dedupe' then
    raise exception 'Invalid job_key_mode value, expected ''replace'', ''preserve_run_at'' or ''unsafe_dedupe''.'
      using errcode = 'GWBKM';
  end if;

  -- unsafe_dedupe: an existing job with this key wins, whatever its state.
  insert into :GRAPHILE_WORKER_SCHEMA._private_tasks (identifier)
  values (add_job.identifier)
  on conflict do nothing;

  if add_job.queue_name is not null then
    insert into :GRAPHILE_WORKER_SCHEMA._private_job_queues (queue_name)
    values (add_job.queue_name)
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

  return v_result;
end;
$fn$;

create or replace function :GRAPHILE_WORKER_SCHEMA.add_jobs(
  specs :GRAPHILE_WORKER_SCHEMA.job_spec[],
  job_key_preserve_run_at boolean default false
) returns setof :GRAPHILE_WORKER_SCHEMA._private_jobs
language plpgsql as $fn$
begin
  -- New task identifiers and queue names get their ids in order of first mention.
  insert into :GRAPHILE_WORKER_SCHEMA._private_tasks (identifier)
  select s.identifier
    from unnest(specs) with ordinality as s
   group by s.identifier
   order by min(s.ordinality)
  on conflict do nothing;

  insert into :GRAPHILE_WORKER_SCHEMA._private_job_queues (queue_name)
  select s.queue_name
    from unnest(specs) with ordinality as s
   where s.queue_name is not null
   group by s.queue_name
   order by min(s.ordinality)
  on conflict do nothing;

  -- A job holding one of the keys that is running or permanently failed is
  -- detached (key cleared, no more retries); a fresh job takes the key below.
  update :GRAPHILE_WORKER_SCHEMA._private_jobs as j
     set key = null,
         attempts = j.max_attempts,
         updated_at = now()
   where j.is_available is not true
     and j.key in (select s.job_key from unnest(specs) as s where s.job_key is not null);

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

create or replace function :GRAPHILE_WORKER_SCHEMA.complete_jobs(job_ids bigint[])
returns setof :GRAPHILE_WORKER_SCHEMA._private_jobs
language sql as $fn$
  delete from :GRAPHILE_WORKER_SCHEMA._private_jobs as j
   where j.id = any($1)
     and (j.locked_at is null or j.locked_at < now() - interval '4 hours')
  returning *;
$fn$;

create or replace function :GRAPHILE_WORKER_SCHEMA.force_unlock_workers(worker_ids text[])
returns void
language sql as $fn$
  update :GRAPHILE_WORKER_SCHEMA._private_jobs as j
     set locked_at = null, locked_by = null
   where j.locked_by = any($1);
  update :GRAPHILE_WORKER_SCHEMA._private_job_queues as q
     set locked_at = null, locked_by = null
   where q.locked_by = any($1);
$fn$;

create or replace function :GRAPHILE_WORKER_SCHEMA.permanently_fail_jobs(job_ids bigint[], error_message text default null)
returns setof :GRAPHILE_WORKER_SCHEMA._private_jobs
language sql as $fn$
  update :GRAPHILE_WORKER_SCHEMA._private_jobs as j
     set last_error = coalesce($2, 'Manually marked as failed'),
         attempts = j.max_attempts,
         updated_at = now()
   where j.id = any($1)
     and (j.locked_at is null or j.locked_at < now() - interval '4 hours')
  returning *;
$fn$;

create or replace function :GRAPHILE_WORKER_SCHEMA.remove_job(job_key text)
returns :GRAPHILE_WORKER_SCHEMA._private_jobs
language plpgsql strict as $fn$
declare
  v_result :GRAPHILE_WORKER_SCHEMA._private_jobs;
begin
  -- A job that is not locked (or whose lock is over 4 hours old) is deleted ...
  delete from :GRAPHILE_WORKER_SCHEMA._private_jobs as j
   where j.key = remove_job.job_key
     and (j.locked_at is null or j.locked_at < now() - interval '4 hours')
  returning * into v_result;

  if v_result.id is not null then
    return v_result;
  end if;

  -- ... a running one may finish, but it loses its key and is never retried.
  update :GRAPHILE_WORKER_SCHEMA._private_jobs as j
     set key = null,
         attempts = j.max_attempts,
         updated_at = now()
   where j.key = remove_job.job_key
  returning * into v_result;

  return v_result;
end;
$fn$;

create or replace function :GRAPHILE_WORKER_SCHEMA.reschedule_jobs(
  job_ids bigint[],
  run_at timestamptz default null,
  priority integer default null,
  attempts integer default null,
  max_attempts integer default null
) returns setof :GRAPHILE_WORKER_SCHEMA._private_jobs
language sql as $fn$
  update :GRAPHILE_WORKER_SCHEMA._private_jobs as j
     set run_at = coalesce($2, j.run_at),
         priority = coalesce($3::smallint, j.priority),
         attempts = coalesce($4::smallint, j.attempts),
         max_attempts = coalesce($5::smallint, j.max_attempts),
         updated_at = now()
   where j.id = any($1)
     and (j.locked_at is null or j.locked_at < now() - interval '4 hours')
  returning *;
$fn$;
