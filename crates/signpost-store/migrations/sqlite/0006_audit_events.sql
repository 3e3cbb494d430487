-- The audit log (docs/SECURITY.md): one row per write and per issued token, names and ids only,
-- never a secret or a property value. Read newest first by (at_ms, id); pruned by at_ms.
-- AUTOINCREMENT: an id is never given twice, even after the newest rows were pruned.
CREATE TABLE audit_events (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms         INTEGER NOT NULL,
    actor         TEXT NOT NULL,
    subaccount_id TEXT,
    instance_id   TEXT,
    action        TEXT NOT NULL,
    entity_kind   TEXT,
    entity_name   TEXT,
    outcome       TEXT NOT NULL,
    status        INTEGER NOT NULL,
    request_id    TEXT
);
CREATE INDEX audit_events_at ON audit_events (at_ms, id);
