-- Where each replica can be reached by its siblings (ASSISTD_ADVERTISE_URL): E2B data-plane
-- calls for a sandbox whose session another replica holds are proxied there.
ALTER TABLE workers ADD COLUMN address TEXT;
