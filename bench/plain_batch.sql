INSERT INTO bench_plain.billing_log (agent_type, campaign_id, tokens, cost, billing_month)
SELECT 'CONTENT', 'campaign-' || (g % 8 + 1), 1000 + g, (1000 + g) * 0.00004, to_char(now(), 'YYYY-MM') FROM generate_series(1, 100) g;
