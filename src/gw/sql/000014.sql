-- gw migration 14: add_job and reschedule_jobs take integer again (cast to smallint inside); job_spec stays smallint
--! breaking-change

drop function :GRAPHILE_WORKER_SCHEMA.add_job;
create function :GRAPHILE_WORKER_SCHEMA.add_job(
  identifier text,
  payload json default null,
  queue_name text default null,
  run_at timestamptz default null,
  max_attempts integer default null,
  job_key text default null,
  priority integer default null,
  flags text[] default null,
  job_key_mode text default 'replace'
) returns :GRAPHILE_WORKER_SCHEMA.jobs
language plpgsql as $fn$
declare
  v_result :GRAPHILE_WORKER_SCHEMA.jobs;
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
  insert into :GRAPHILE_WORKER_SCHEMA.tasks (identifier)
  values (add_job.identifier)
  on conflict do nothing;

  if add_job.queue_name is not null then
    insert into :GRAPHILE_WORKER_SCHEMA.job_queues (queue_name)
    values (add_job.queue_name)
    on conflict do nothing;
  end if;

  insert into :GRAPHILE_WORKER_SCHEMA.jobs as j
    (job_queue_id, task_id, payload, run_at, max_attempts, key, priority, flags)
  select q.id,
         t.id,
         coalesce(add_job.payload, '{}'::json),
         coalesce(add_job.run_at, now()),
         coalesce(add_job.max_attempts::smallint, 25::smallint),
         add_job.job_key,
         coalesce(add_job.priority::smallint, 0::smallint),
         (select jsonb_object_agg(f.name, true) from unnest(add_job.flags) as f(name))
    from :GRAPHILE_WORKER_SCHEMA.tasks as t
    left join :GRAPHILE_WORKER_SCHEMA.job_queues as q on q.queue_name = add_job.queue_name
   where t.identifier = add_job.identifier
  on conflict (key) do update
     set revision = j.revision + 1,
         updated_at = now()
  returning * into v_result;

  return v_result;
end;
$fn$;

drop function :GRAPHILE_WORKER_SCHEMA.reschedule_jobs;
create function :GRAPHILE_WORKER_SCHEMA.reschedule_jobs(
  job_ids bigint[],
  run_at timestamptz default null,
  priority integer default null,
  attempts integer default null,
  max_attempts integer default null
) returns setof :GRAPHILE_WORKER_SCHEMA.jobs
language sql as $fn$
  update :GRAPHILE_WORKER_SCHEMA.jobs as j
     set run_at = coalesce($2, j.run_at),
         priority = coalesce($3::smallint, j.priority),
         attempts = coalesce($4::smallint, j.attempts),
         max_attempts = coalesce($5::smallint, j.max_attempts),
         updated_at = now()
   where j.id = any($1)
     and (j.locked_at is null or j.locked_at < now() - interval '4 hours')
  returning *;
$fn$;
