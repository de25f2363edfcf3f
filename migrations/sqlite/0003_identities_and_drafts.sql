-- One person's identities on several platforms, and partly answered multi-step forms.

CREATE TABLE identity_links (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    person TEXT NOT NULL,
    actor TEXT NOT NULL UNIQUE,
    linked_by TEXT NOT NULL,
    linked_at INTEGER NOT NULL
);
CREATE INDEX identity_links_person ON identity_links (person);

CREATE TABLE form_drafts (
    id TEXT PRIMARY KEY,
    platform TEXT NOT NULL,
    user_id TEXT NOT NULL,
    form TEXT NOT NULL,
    answers TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
