\set tokens random(64, 14089)
\set c random(1, 8)
SELECT can_execute FROM neon_budget.budget_check('campaign-' || :c, 'CONTENT', :tokens);
