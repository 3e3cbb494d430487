-- The number of entities per owner, level and kind, kept in the row that already serialises an
-- owner's creates: the entity limit and a page's Entity-Count read one row instead of counting
-- the collection. Backfilled from what is stored.
ALTER TABLE entity_owners ADD COLUMN entity_count BIGINT NOT NULL DEFAULT 0;

INSERT INTO entity_owners (level, owner_id, kind, entity_count)
SELECT level, owner_id, kind, COUNT(*) FROM entities GROUP BY level, owner_id, kind
ON CONFLICT (level, owner_id, kind) DO UPDATE SET entity_count = excluded.entity_count;
