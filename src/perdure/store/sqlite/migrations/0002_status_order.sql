-- perdure SQLite schema 2: the status index in listing order.
-- Listing instances of one status is ordered by (created_at, instance_id). With the
-- status index ending at created_at, the planner walked instances_created instead and
-- read every instance row to test its status: a page of a rare status (a few Pending
-- among 10,000 Completed) took 4.4 ms, growing with the table. Ending the index with
-- instance_id serves such a page from the index alone, in order.

DROP INDEX instances_status;
CREATE INDEX instances_status ON instances (hub, status, created_at, instance_id);
