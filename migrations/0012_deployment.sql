-- The deployment this database belongs to: one row, its id made once (by the first server to
-- start). Sandbox containers carry it in a label beside their owning worker, so processes of
-- other deployments on the same Docker engine leave them alone.
CREATE TABLE deployment (
    single     BOOLEAN PRIMARY KEY DEFAULT true CHECK (single),
    id         TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
