\set tokens random(64, 14089)
\set c random(1, 8)
BEGIN;
INSERT INTO bench_plain.reservation (month, campaign_id, agent_type, estimated_tokens, estimated_cost, expires_at) VALUES (to_char(now(), 'YYYY-MM'), 'campaign-' || :c, 'CONTENT', :tokens, :tokens * 0.00004, clock_timestamp() + interval '15 minutes') RETURNING id AS rid \gset
WITH settled AS (DELETE FROM bench_plain.reservation WHERE id = :rid) INSERT INTO bench_plain.billing_log (agent_type, campaign_id, tokens, cost, billing_month, execution_id) VALUES ('CONTENT', 'campaign-' || :c, :tokens, :tokens * 0.00004, to_char(now(), 'YYYY-MM'), gen_random_uuid()::text);
COMMIT;
