\set tokens random(64, 14089)
\set c random(1, 8)
BEGIN;
SELECT neon_budget.budget_reserve('CONTENT', :tokens, 'campaign-' || :c) AS rid \gset
SELECT 1 FROM neon_budget.track_cost('CONTENT', :tokens, campaign_id => 'campaign-' || :c, execution_id => gen_random_uuid()::text, reservation_id => :rid);
COMMIT;
