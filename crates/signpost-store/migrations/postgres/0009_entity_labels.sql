-- Labels of destinations, fragments and certificates: the JSON array of {key, values}, not
-- secret and not encrypted; NULL when the entity has none. Updates of the body keep it.
ALTER TABLE entities ADD COLUMN labels TEXT;
