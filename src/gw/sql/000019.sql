-- gw migration 19: marker only (locked_by now holds the worker pool id); changes nothing
--! breaking-change

-- Graphile Worker 0.17 flagged this id as breaking so that older workers, which
-- lock jobs per worker rather than per pool, refuse to run against this schema.
select 19 as gw_breaking_marker;
