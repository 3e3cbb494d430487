-- The number of entities per owner, level and kind: the entity limit and a page's Entity-Count
-- read one row instead of counting the collection. Backfilled from what is stored.
CREATE TABLE entity_owners (
    level        TEXT NOT NULL,
    owner_id     TEXT NOT NULL,
    kind         TEXT NOT NULL,
    entity_count INTEGER NOT NULL,
    PRIMARY KEY (level, owner_id, kind)
);

INSERT INTO entity_owners (level, owner_id, kind, entity_count)
SELECT level, owner_id, kind, COUNT(*) FROM entities GROUP BY level, owner_id, kind;
