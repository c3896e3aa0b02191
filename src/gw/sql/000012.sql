-- gw migration 12: add_jobs merges batch jobs (both payloads JSON arrays => concatenated) on key conflict

-- Identical to migration 11's add_jobs except for the payload of a replaced job:
-- when the waiting job's payload and the new payload are both JSON arrays, the new
-- items are appended to the old ones, so producers can extend a pending batch job.
create or replace function :GRAPHILE_WORKER_SCHEMA.add_jobs(
  specs :GRAPHILE_WORKER_SCHEMA.job_spec[],
  job_key_preserve_run_at boolean default false
) returns setof :GRAPHILE_WORKER_SCHEMA.jobs
language plpgsql as $fn$
begin
  -- New task identifiers and queue names get their ids in order of first mention.
  insert into :GRAPHILE_WORKER_SCHEMA.tasks (identifier)
  select s.identifier
    from unnest(specs) with ordinality as s
   group by s.identifier
   order by min(s.ordinality)
  on conflict do nothing;

  insert into :GRAPHILE_WORKER_SCHEMA.job_queues (queue_name)
  select s.queue_name
    from unnest(specs) with ordinality as s
   where s.queue_name is not null
   group by s.queue_name
   order by min(s.ordinality)
  on conflict do nothing;

  update :GRAPHILE_WORKER_SCHEMA.jobs as j
     set key = null,
         attempts = j.max_attempts,
         updated_at = now()
   where j.is_available is not true
     and j.key in (select s.job_key from unnest(specs) as s where s.job_key is not null);

  return query
  insert into :GRAPHILE_WORKER_SCHEMA.jobs as j
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
    join :GRAPHILE_WORKER_SCHEMA.tasks as t on t.identifier = s.identifier
    left join :GRAPHILE_WORKER_SCHEMA.job_queues as q on q.queue_name = s.queue_name
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
