-- A fingerprint of the secret key the database's sealed secrets were made with, so a
-- server started with another key refuses instead of sealing new secrets with it.
CREATE TABLE secret_key_check (id INTEGER PRIMARY KEY CHECK (id = 1), fingerprint TEXT NOT NULL);
