-- Writers of changes take turns: a change created while another is approved must see
-- it, or a conflict appearing after approval would go untold.
INSERT INTO engine_locks (name) VALUES ('changes');
-- Incident ids are allocated by whoever opens incidents, under the `incidents` lock
-- (ids follow each other without gaps); an insert without one fails loudly instead of
-- colliding with the sequence.
ALTER TABLE incidents ALTER COLUMN id DROP DEFAULT;
