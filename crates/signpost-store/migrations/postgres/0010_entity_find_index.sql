-- Find destination's reads of one entity probe a hash index over the whole key instead of the
-- primary key's B-tree: one bucket page instead of a descent through three or four levels whose
-- every step compares four text columns. Measured with pgbench on a million destinations (2
-- clients, batches of 1, 4 and 16 lookups): 10 to 17 %, 28 % and 55 % more lookups a second
-- (bench/README.md). The statements repeat this expression exactly (postgres.rs), so that the
-- planner matches it; '/' cannot make two keys equal that differ, and the rows found are checked
-- against every column anyway. Names, owners and kinds are "C"-collated: the text's bytes hash.
CREATE INDEX entities_find ON entities USING hash ((level || '/' || owner_id || '/' || kind || '/' || name));
