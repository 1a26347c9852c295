-- At most one running job of each kind, enforced by the database so that two instances (or two
-- clicks) starting the same job at once cannot both run it. Older duplicates, if any, are closed.
UPDATE jobs SET status = 'failed', finished_at = heartbeat_at, error = 'superseded by a newer run'
WHERE status = 'running'
  AND id <> (SELECT j2.id FROM jobs j2 WHERE j2.kind = jobs.kind AND j2.status = 'running'
             ORDER BY j2.started_at DESC, j2.id DESC LIMIT 1);

CREATE UNIQUE INDEX jobs_one_running ON jobs (kind) WHERE status = 'running';
