-- Named server secrets (the built-in CA), encrypted; and leases for background jobs that only
-- one process may run at a time (certificate renewal).
CREATE TABLE secrets (
    name       TEXT PRIMARY KEY NOT NULL,
    value      BLOB NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE leases (
    name       TEXT PRIMARY KEY NOT NULL,
    holder     TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
