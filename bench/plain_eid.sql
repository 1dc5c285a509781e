\set tokens random(64, 14089)
\set c random(1, 8)
INSERT INTO bench_plain.billing_log (agent_type, campaign_id, tokens, cost, billing_month, execution_id) VALUES ('CONTENT', 'campaign-' || :c, :tokens, :tokens * 0.00004, to_char(now(), 'YYYY-MM'), gen_random_uuid()::text);
