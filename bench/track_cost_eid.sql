\set tokens random(64, 14089)
\set c random(1, 8)
SELECT 1 FROM neon_budget.track_cost('CONTENT', :tokens, campaign_id => 'campaign-' || :c, execution_id => gen_random_uuid()::text);
