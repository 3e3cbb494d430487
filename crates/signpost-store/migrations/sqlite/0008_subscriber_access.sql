-- Subscriber access (docs/MULTITENANCY.md): the instance configuration JSON's
-- `subscriber_access` as given (JSON text; NULL: none), and the scopes a binding's tokens carry
-- (a JSON array of strings; NULL: none).
ALTER TABLE instances ADD COLUMN subscriber_access TEXT;
ALTER TABLE bindings ADD COLUMN scopes TEXT;
