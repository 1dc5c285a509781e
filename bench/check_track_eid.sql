\set tokens random(64, 14089)
\set c random(1, 8)
SELECT can_execute FROM neon_budget.budget_check('campaign-' || :c, 'CONTENT', :tokens);
SELECT 1 FROM neon_budget.track_cost('CONTENT', :tokens, campaign_id => 'campaign-' || :c, execution_id => gen_random_uuid()::text);
