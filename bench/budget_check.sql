\set c random(1, 8)
SELECT can_execute FROM neon_budget.budget_check('campaign-' || :c, 'CONTENT', 1000);
