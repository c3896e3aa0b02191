-- gw migration 15: drop the obsolete pre-11 trigger functions; add force_unlock_workers

drop function :GRAPHILE_WORKER_SCHEMA.jobs__increase_job_queue_count();
drop function :GRAPHILE_WORKER_SCHEMA.jobs__decrease_job_queue_count();
drop function :GRAPHILE_WORKER_SCHEMA.tg__update_timestamp();

-- Unlock every job and queue held by the given (dead) lockers; attempts and run_at stay.
create function :GRAPHILE_WORKER_SCHEMA.force_unlock_workers(worker_ids text[])
returns void
language sql volatile as $fn$
  update :GRAPHILE_WORKER_SCHEMA.jobs as j
     set locked_at = null, locked_by = null
   where j.locked_by = any($1);
  update :GRAPHILE_WORKER_SCHEMA.job_queues as q
     set locked_at = null, locked_by = null
   where q.locked_by = any($1);
$fn$;
