-- Named server secrets (the built-in CA), encrypted; and leases for background jobs that only
-- one process may run at a time (certificate renewal).
CREATE TABLE secrets (
    name       TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    value      BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE leases (
    name       TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    holder     TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);

-- PostgreSQL only (SQLite has one writer): one row per owner, level and kind that has had an
-- entity created. A transaction creating an entity locks this row (an upsert) before it counts
-- the owner's entities, so concurrent creates on several connections cannot together pass the
-- entity limit. A plain row lock, which PostgreSQL-compatible distributed engines also have.
CREATE TABLE entity_owners (
    level    TEXT COLLATE "C" NOT NULL,
    owner_id TEXT COLLATE "C" NOT NULL,
    kind     TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (level, owner_id, kind)
);
