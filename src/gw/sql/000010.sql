-- gw migration 10: drop any default left on jobs.queue_name

alter table :GRAPHILE_WORKER_SCHEMA.jobs alter column queue_name drop default;
