-- Signpost schema, PostgreSQL engine: the same tables as migrations/sqlite, with BYTEA for the
-- encrypted blobs, BIGINT for times (Unix milliseconds) and COLLATE "C" on identifiers and names so
-- that ORDER BY is byte order, as in SQLite, whatever the database's locale.
CREATE TABLE meta (
    key   TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    value BYTEA NOT NULL
);

CREATE TABLE subaccounts (
    id         TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    subdomain  TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE instances (
    id                TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    subaccount_id     TEXT COLLATE "C" NOT NULL REFERENCES subaccounts (id),
    service_id        TEXT NOT NULL,
    plan_id           TEXT NOT NULL,
    organization_guid TEXT,
    space_guid        TEXT,
    context           TEXT NOT NULL,
    request_digest    TEXT NOT NULL,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL
);

CREATE TABLE bindings (
    id              TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    instance_id     TEXT COLLATE "C" NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
    client_id       TEXT COLLATE "C" NOT NULL UNIQUE,
    secret          BYTEA,
    credential_type TEXT NOT NULL,
    request_digest  TEXT NOT NULL,
    created_at      BIGINT NOT NULL
);
CREATE INDEX bindings_instance ON bindings (instance_id);

-- Destinations, fragments and certificates of one owner on one level; names unique per owner,
-- level and kind (the primary key). `body` is the AES-256-GCM encrypted JSON of the entity.
CREATE TABLE entities (
    level       TEXT COLLATE "C" NOT NULL,
    owner_id    TEXT COLLATE "C" NOT NULL,
    kind        TEXT COLLATE "C" NOT NULL,
    name        TEXT COLLATE "C" NOT NULL,
    body        BYTEA NOT NULL,
    etag        TEXT NOT NULL,
    modified_at BIGINT NOT NULL,
    PRIMARY KEY (level, owner_id, kind, name)
);
CREATE INDEX entities_modified ON entities (level, owner_id, kind, modified_at);

CREATE TABLE signing_keys (
    kid         TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    private_key BYTEA NOT NULL,
    public_jwk  TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
