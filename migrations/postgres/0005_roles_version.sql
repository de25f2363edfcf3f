-- Changes of role members and identity links set a new random version, so that a
-- process can keep the roles in memory and check with one read whether they changed.
CREATE TABLE roles_version (
    id INTEGER PRIMARY KEY,
    version BIGINT NOT NULL
);
INSERT INTO roles_version (id, version) VALUES (1, 0);
