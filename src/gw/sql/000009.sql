-- gw migration 9: get_job takes the current time as an argument (defaults to now())

drop function :GRAPHILE_WORKER_SCHEMA.get_job(text, text[], interval, text[]);

create function :GRAPHILE_WORKER_SCHEMA.get_job(
  worker_id text,
  task_identifiers text[] = null,
  job_expiry interval = interval '4 hours',
  forbidden_flags text[] = null,
  now timestamptz = now()
) returns :GRAPHILE_WORKER_SCHEMA.jobs
language plpgsql volatile as $fn$
declare
  v_now timestamptz := get_job.now;
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
