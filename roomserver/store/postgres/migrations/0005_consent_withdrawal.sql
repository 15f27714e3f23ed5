-- 0005: a consent can be withdrawn (the citizen answers "No" after having agreed); the row stays as
-- the record of both. Consents are looked up by token id when the join page asks "agreed already?".
ALTER TABLE consents ADD COLUMN withdrawn_at BIGINT;
CREATE INDEX consents_by_jti ON consents (jti);
