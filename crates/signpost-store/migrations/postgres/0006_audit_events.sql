-- The audit log (docs/SECURITY.md): one row per write and per issued token, names and ids only,
-- never a secret or a property value. Read newest first by (at_ms, id); pruned by at_ms.
CREATE TABLE audit_events (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at_ms         BIGINT NOT NULL,
    actor         TEXT NOT NULL,
    subaccount_id TEXT COLLATE "C",
    instance_id   TEXT COLLATE "C",
    action        TEXT NOT NULL,
    entity_kind   TEXT,
    entity_name   TEXT COLLATE "C",
    outcome       TEXT NOT NULL,
    status        BIGINT NOT NULL,
    request_id    TEXT
);
CREATE INDEX audit_events_at ON audit_events (at_ms, id);
