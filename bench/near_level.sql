\set c random(1, 8)
SELECT 1 FROM neon_budget.track_cost('CONTENT', 0, campaign_id => 'campaign-' || :c, execution_id => gen_random_uuid()::text, cost => 0.0001);
