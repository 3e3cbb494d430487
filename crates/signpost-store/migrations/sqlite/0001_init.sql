-- Signpost schema, SQLite engine. Secrets live only inside the encrypted BLOB columns.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value BLOB NOT NULL
);

CREATE TABLE subaccounts (
    id         TEXT PRIMARY KEY NOT NULL,
    subdomain  TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE instances (
    id                TEXT PRIMARY KEY NOT NULL,
    subaccount_id     TEXT NOT NULL REFERENCES subaccounts (id),
    service_id        TEXT NOT NULL,
    plan_id           TEXT NOT NULL,
    organization_guid TEXT,
    space_guid        TEXT,
    context           TEXT NOT NULL,
    request_digest    TEXT NOT NULL,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
);

CREATE TABLE bindings (
    id              TEXT PRIMARY KEY NOT NULL,
    instance_id     TEXT NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
    client_id       TEXT NOT NULL UNIQUE,
    secret          BLOB,
    credential_type TEXT NOT NULL,
    request_digest  TEXT NOT NULL,
    created_at      INTEGER NOT NULL
);
CREATE INDEX bindings_instance ON bindings (instance_id);

-- Destinations, fragments and certificates of one owner on one level; names unique per owner,
-- level and kind. `body` is the AES-256-GCM encrypted JSON of the entity.
CREATE TABLE entities (
    level       TEXT NOT NULL,
    owner_id    TEXT NOT NULL,
    kind        TEXT NOT NULL,
    name        TEXT NOT NULL,
    body        BLOB NOT NULL,
    etag        TEXT NOT NULL,
    modified_at INTEGER NOT NULL,
    PRIMARY KEY (level, owner_id, kind, name)
);
CREATE INDEX entities_modified ON entities (level, owner_id, kind, modified_at);

CREATE TABLE signing_keys (
    kid         TEXT PRIMARY KEY NOT NULL,
    private_key BLOB NOT NULL,
    public_jwk  TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
