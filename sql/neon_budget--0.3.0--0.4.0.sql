-- neon_budget 0.3.0 -> 0.4.0 (ALTER EXTENSION neon_budget UPDATE TO '0.4.0').
-- Every schema change since 0.3.0 (commit fe76378) is here, in the order it was made; a fresh
-- install of 0.4.0 and 0.3.0 + this script give the same objects (scripts/upgrade_test.sh
-- compares the catalogs).
\echo Use "ALTER EXTENSION neon_budget UPDATE TO '0.4.0'" to load this file. \quit

-- Maintenance never stops writers (issue #10): what purge_before, anonymize_before,
-- budget_verify and budget_rebuild do now.
COMMENT ON FUNCTION neon_budget.budget_verify(text) IS
$$Every maintained aggregate row that differs from billing_log plus purged_spend and purged_day_spend: aggregate (monthly_budget, campaign_cost, agent_cost, daily_cost), key (campaign id, agent type, day YYYY-MM-DD, '' for the month), month (YYYY-MM; NULL argument = all months), expected and stored sums as JSON (dollars, tokens, executions, ...). Empty when all agree. Reads only the month's rows. Admin only. Errors: 22007 malformed month.$$;

COMMENT ON FUNCTION neon_budget.budget_rebuild(text) IS
$$Makes a month's (YYYY-MM) aggregates equal to billing_log plus purged_spend and purged_day_spend: adds each difference budget_verify(month) finds to the key's slot-0 row, in one snapshot; returns the aggregate rows corrected (0 when none differ). Writers never wait for it; two rebuilds of a month take turns. Writes audit_log with the differences. Admin only. Errors: 22007 malformed month; 22004 NULL; 40001 in REPEATABLE READ when another rebuild of the month committed after the snapshot.$$;

COMMENT ON FUNCTION neon_budget.anonymize_before(timestamptz) IS
$$Clears task and metadata of billing_log rows created before the cutoff and replaces each execution_id by its keyed digest (nb-anon:..., so a retry still records once); returns the rows changed. Totals do not change; takes no lock that writers wait for; retention calls take turns. Writes audit_log. Admin only. Errors: 22004 NULL.$$;

COMMENT ON FUNCTION neon_budget.purge_before(timestamptz) IS
$$Deletes billing_log rows created before the cutoff; returns the rows deleted. Monthly, campaign, agent and daily totals do not change (the purged sums move to purged_spend and purged_day_spend, the execution ids' keyed digests to purged_execution_id). Works in batches of 1024 pages, then one pass over the whole table for rows updated meanwhile; takes no lock that writers wait for (only a write to a row being purged waits for its commit); retention calls take turns. Writes audit_log. Admin only. Errors: 22004 NULL.$$;

-- Which path each write took (issue #11): the fast path recognises billing_log by definitions,
-- and DBAs see when it is off and why.
CREATE TABLE neon_budget._write_path_stats (
    slot       integer     NOT NULL,
    path       text        NOT NULL CHECK (path IN ('heap', 'sql')),
    reason     text        NOT NULL,
    writes     bigint      NOT NULL,
    last_write timestamptz NOT NULL,
    PRIMARY KEY (slot, path, reason)
);
COMMENT ON TABLE neon_budget._write_path_stats IS
  'Writes to billing_log per backend slot, path (heap: track_cost without SQL; sql: an SQL INSERT) and reason, added by each backend at most once a second (src/write_path_stats.rs); see the write_path_stats view.';

CREATE VIEW neon_budget.write_path_stats AS
SELECT s.path, s.reason, sum(s.writes)::bigint AS writes, max(s.last_write) AS last_write
  FROM neon_budget._write_path_stats s
 GROUP BY s.path, s.reason;
COMMENT ON VIEW neon_budget.write_path_stats IS
  'Which path writes to billing_log took, per database: path heap (track_cost wrote the row with the heap API) or sql (an SQL INSERT), the reason (track_cost: why it could not take the heap path, e.g. a CHECK constraint the extension did not create; or INSERT or COPY), rows written and the last write. Approximate: each backend adds its counts at most once a second. Admin only.';
REVOKE ALL ON neon_budget._write_path_stats, neon_budget.write_path_stats FROM PUBLIC;
GRANT SELECT ON neon_budget._write_path_stats, neon_budget.write_path_stats TO neon_budget_admin;
