-- Writers of changes take turns (SQLite's writer is exclusive already; the row keeps
-- the migration versions of both databases alike).
INSERT INTO engine_locks (name) VALUES ('changes');
