-- Change templates: routine work approved once by the owner teams (a catalog section,
-- stored like the others), and the template a standard change follows.
CREATE TABLE change_templates (id TEXT PRIMARY KEY, body TEXT NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
ALTER TABLE changes ADD COLUMN template TEXT;
