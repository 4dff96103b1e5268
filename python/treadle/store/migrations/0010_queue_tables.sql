-- The tables a queue churns: each row is updated a few times in its first seconds and then
-- left alone, so dead row versions pile up at the rate of the traffic. Measured on the
-- workflow bench (bench/RESULTS.md, issue 10): after 6,000 jobs the dispatch latency went
-- from 8 to 13 ms at p50 until a VACUUM, which brought it back.
--
-- 1. Vacuum after a fixed number of dead rows, not after a fifth of the table, and without
--    the cost-based pauses, so that a busy table is cleaned at each autovacuum round.
-- 2. Leave room in each page (fillfactor) and index no column the updates change, so that
--    a run's or a node's update is a HOT update: no index entry, nothing for vacuum to
--    clean in the indexes. A node's timer column is cleared when the node ends, and the
--    timer index names only it.
ALTER TABLE jobs SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 2000,
    autovacuum_vacuum_cost_delay = 0, autovacuum_analyze_scale_factor = 0.05);
ALTER TABLE event_outbox SET (autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 5000, autovacuum_vacuum_cost_delay = 0);
ALTER TABLE workflow_runs SET (fillfactor = 80, autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 2000, autovacuum_vacuum_cost_delay = 0);
ALTER TABLE workflow_nodes SET (fillfactor = 80, autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 2000, autovacuum_vacuum_cost_delay = 0);

UPDATE workflow_nodes SET fire_at = NULL WHERE status <> 'running' AND fire_at IS NOT NULL;
DROP INDEX workflow_nodes_timers;
CREATE INDEX workflow_nodes_timers ON workflow_nodes (fire_at) WHERE fire_at IS NOT NULL;
