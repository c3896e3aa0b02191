-- gw migration 11: rebuild into tasks/job_queues/jobs with generated is_available, job_spec, add_jobs; carry jobs over
--! breaking-change

-- Keep every other session away from the old tables while they are rebuilt.
lock table :GRAPHILE_WORKER_SCHEMA.jobs;
lock table :GRAPHILE_WORKER_SCHEMA.job_queues;

-- Locks cannot be carried over, so refuse while any job was locked in the last
-- 4 hours. The SQLSTATE is 22012 (division_by_zero) because that is what the
-- migration runners of Graphile Worker (and gw) recognise for migration 11.
do $gw_guard$
begin
  if exists (
    select 1
      from :GRAPHILE_WORKER_SCHEMA.jobs as j
     where j.locked_at is not null
       and j.locked_at > now() - interval '4 hours'
  ) then
    raise exception 'There are locked jobs present; migration 11 cannot complete.'
      using errcode = 'division_by_zero',
            hint = 'Shut all workers down cleanly so that no job is locked, then migrate again.';
  end if;
end
$gw_guard$;

alter table :GRAPHILE_WORKER_SCHEMA.jobs
  alter column attempts type int2,
  alter column max_attempts type int2,
  alter column priority type int2;

-- Fetching, completing and failing move into application SQL.
drop function :GRAPHILE_WORKER_SCHEMA.complete_job;
drop function :GRAPHILE_WORKER_SCHEMA.fail_job;
drop function :GRAPHILE_WORKER_SCHEMA.get_job;

drop trigger _900_notify_worker on :GRAPHILE_WORKER_SCHEMA.jobs;
drop function :GRAPHILE_WORKER_SCHEMA.add_job;
drop function :GRAPHILE_WORKER_SCHEMA.complete_jobs;
drop function :GRAPHILE_WORKER_SCHEMA.permanently_fail_jobs;
drop function :GRAPHILE_WORKER_SCHEMA.remove_job;
drop function :GRAPHILE_WORKER_SCHEMA.reschedule_jobs;
drop function :GRAPHILE_WORKER_SCHEMA.tg_jobs__notify_new_jobs;

-- The old tables stay (under new names) until their rows are copied, which is why
-- several of the new constraint, index and sequence names get a "1" suffix.
alter table :GRAPHILE_WORKER_SCHEMA.jobs rename to jobs_legacy;
alter table :GRAPHILE_WORKER_SCHEMA.job_queues rename to job_queues_legacy;

create table :GRAPHILE_WORKER_SCHEMA.job_queues (
  id int primary key generated always as identity,
  queue_name text not null unique check (length(queue_name) <= 128),
  locked_at timestamptz,
  locked_by text,
  is_available boolean generated always as ((locked_at is null)) stored not null
);
alter table :GRAPHILE_WORKER_SCHEMA.job_queues enable row level security;

create table :GRAPHILE_WORKER_SCHEMA.tasks (
  id int primary key generated always as identity,
  identifier text not null unique check (length(identifier) <= 128)
);
alter table :GRAPHILE_WORKER_SCHEMA.tasks enable row level security;

-- job_queue_id and task_id deliberately have no foreign keys.
create table :GRAPHILE_WORKER_SCHEMA.jobs (
  id bigint primary key generated always as identity,
  job_queue_id int null,
  task_id int not null,
  payload json default '{}'::json not null,
  priority smallint default 0 not null,
  run_at timestamptz default now() not null,
  attempts smallint default 0 not null,
  max_attempts smallint default 25 not null
    constraint jobs_max_attempts_check check (max_attempts >= 1),
  last_error text,
  created_at timestamptz default now() not null,
  updated_at timestamptz default now() not null,
  key text unique
    constraint jobs_key_check check (length(key) > 0 and length(key) <= 512),
  locked_at timestamptz,
  locked_by text,
  revision integer default 0 not null,
  flags jsonb,
  is_available boolean generated always as (((locked_at is null) and (attempts < max_attempts))) stored not null
);
alter table :GRAPHILE_WORKER_SCHEMA.jobs enable row level security;

create index jobs_main_index
  on :GRAPHILE_WORKER_SCHEMA.jobs using btree (priority, run_at)
  include (id, task_id, job_queue_id)
  where (is_available = true);

create index jobs_no_queue_index
  on :GRAPHILE_WORKER_SCHEMA.jobs using btree (priority, run_at)
  include (id, task_id)
  where (is_available = true and job_queue_id is null);

create type :GRAPHILE_WORKER_SCHEMA.job_spec as (
  identifier text,
  payload json,
  queue_name text,
  run_at timestamptz,
  max_attempts integer,
  job_key text,
  priority integer,
  flags text[]
);

-- Adds many jobs at once. Per spec with a job_key: a waiting job with that key is
-- replaced (revision + 1, attempts and last_error reset, run_at kept when
-- job_key_preserve_run_at and the job never ran); a job with that key that is
-- running or permanently failed is detached (key cleared, no more retries) and a
-- fresh job is inserted instead.
create function :GRAPHILE_WORKER_SCHEMA.add_jobs(
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
         payload = excluded.payload,
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

-- Admin helpers; each skips jobs locked within the last 4 hours.
create function :GRAPHILE_WORKER_SCHEMA.complete_jobs(job_ids bigint[])
returns setof :GRAPHILE_WORKER_SCHEMA.jobs
language sql as $fn$
  delete from :GRAPHILE_WORKER_SCHEMA.jobs as j
   where j.id = any($1)
     and (j.locked_at is null or j.locked_at < now() - interval '4 hours')
  returning *;
$fn$;

create function :GRAPHILE_WORKER_SCHEMA.permanently_fail_jobs(job_ids bigint[], error_message text default null)
returns setof :GRAPHILE_WORKER_SCHEMA.jobs
language sql as $fn$
  update :GRAPHILE_WORKER_SCHEMA.jobs as j
     set last_error = coalesce($2, 'Manually marked as failed'),
         attempts = j.max_attempts,
         updated_at = now()
   where j.id = any($1)
     and (j.locked_at is null or j.locked_at < now() - interval '4 hours')
  returning *;
$fn$;

create function :GRAPHILE_WORKER_SCHEMA.remove_job(job_key text)
returns :GRAPHILE_WORKER_SCHEMA.jobs
language plpgsql strict as $fn$
declare
  v_result :GRAPHILE_WORKER_SCHEMA.jobs;
begin
  delete from :GRAPHILE_WORKER_SCHEMA.jobs as j
   where j.key = remove_job.job_key
     and (j.locked_at is null or j.locked_at < now() - interval '4 hours')
  returning * into v_result;

  if v_result.id is null then
    update :GRAPHILE_WORKER_SCHEMA.jobs as j
       set key = null,
           attempts = j.max_attempts,
           updated_at = now()
     where j.key = remove_job.job_key
    returning * into v_result;
  end if;

  return v_result;
end;
$fn$;

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
         priority = coalesce($3, j.priority),
         attempts = coalesce($4, j.attempts),
         max_attempts = coalesce($5, j.max_attempts),
         updated_at = now()
   where j.id = any($1)
     and (j.locked_at is null or j.locked_at < now() - interval '4 hours')
  returning *;
$fn$;

create function :GRAPHILE_WORKER_SCHEMA.tg_jobs__after_insert() returns trigger
language plpgsql as $fn$
begin
  perform pg_notify('jobs:insert', '');
  return new;
end;
$fn$;

create trigger _900_after_insert
  after insert on :GRAPHILE_WORKER_SCHEMA.jobs
  for each statement execute procedure :GRAPHILE_WORKER_SCHEMA.tg_jobs__after_insert();

-- replace / preserve_run_at go through add_jobs; unsafe_dedupe leaves any existing
-- job with the key untouched except for revision and updated_at.
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
                       add_job.max_attempts, add_job.job_key, add_job.priority,
                       add_job.flags):::GRAPHILE_WORKER_SCHEMA.job_spec],
             add_job.job_key_mode = 'preserve_run_at')
     limit 1;
    return v_result;
  end if;

  if add_job.job_key_mode <> 'unsafe_dedupe' then
    raise exception 'Invalid job_key_mode value, expected ''replace'', ''preserve_run_at'' or ''unsafe_dedupe''.'
      using errcode = 'GWBKM';
  end if;

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
         coalesce(add_job.max_attempts, 25),
         add_job.job_key,
         coalesce(add_job.priority, 0),
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

-- Carry the legacy rows over (new ids; locks are not carried).
insert into :GRAPHILE_WORKER_SCHEMA.job_queues (queue_name)
select distinct l.queue_name
  from :GRAPHILE_WORKER_SCHEMA.jobs_legacy as l
 where l.queue_name is not null
on conflict do nothing;

insert into :GRAPHILE_WORKER_SCHEMA.tasks (identifier)
select distinct l.task_identifier
  from :GRAPHILE_WORKER_SCHEMA.jobs_legacy as l
on conflict do nothing;

insert into :GRAPHILE_WORKER_SCHEMA.jobs
  (job_queue_id, task_id, payload, priority, run_at, attempts, max_attempts,
   last_error, created_at, updated_at, key, revision, flags)
select q.id, t.id, l.payload, l.priority, l.run_at, l.attempts, l.max_attempts,
       l.last_error, l.created_at, l.updated_at, l.key, l.revision, l.flags
  from :GRAPHILE_WORKER_SCHEMA.jobs_legacy as l
  join :GRAPHILE_WORKER_SCHEMA.tasks as t on t.identifier = l.task_identifier
  left join :GRAPHILE_WORKER_SCHEMA.job_queues as q on q.queue_name = l.queue_name
 order by l.id;

drop table :GRAPHILE_WORKER_SCHEMA.jobs_legacy;
drop table :GRAPHILE_WORKER_SCHEMA.job_queues_legacy;
