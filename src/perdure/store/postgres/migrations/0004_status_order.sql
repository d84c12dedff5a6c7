-- perdure PostgreSQL schema 4: the status index in listing order.
-- Listing instances of one status is ordered by (created_at, instance_id). The status
-- index ending at created_at made PostgreSQL read every instance of the status and sort
-- them for each page: a page of 100 Completed among 10,000 took 18 ms, growing with the
-- table. Ending the index with instance_id yields a page in order and stops after it.

CREATE INDEX instances_status_order ON perdure.instances (hub, status, created_at, instance_id);
DROP INDEX perdure.instances_status;
ALTER INDEX perdure.instances_status_order RENAME TO instances_status;
