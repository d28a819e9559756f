-- Tenants (docs/security.md "Tenants"): every stream, event and snapshot
-- belongs to one tenant, stream ids and event ids are unique per tenant
-- (tenant A's order-1 and tenant B's order-1 are two streams, each with its
-- own versions and receipt chain), and PostgreSQL itself keeps tenants
-- apart with row-level security, so that a query that forgets to say whose
-- rows it wants still returns only one tenant's.
--
-- The tenant is the session setting logbook.tenant, which logbookd sets on
-- a connection before it runs a call's statements on it:
--   a tenant's name   the rows of that tenant; rows written take it;
--   '*'               every tenant's rows, to read only, and only for
--                     members of logbook_all_tenants (logbookd's admin
--                     connection: the live tail, signed checkpoints);
--   unset             no rows; nothing can be written.
-- FORCE makes the owner subject to the policies too, so the SECURITY
-- DEFINER functions that write (append_loaded, delete_stream, redact,
-- save_snapshot, ...) find and write the current tenant's rows only.
-- Superusers and BYPASSRLS roles see everything, as always.
--
-- Keys lead with the stream id and end with the tenant, so each look-up by
-- stream or event id still probes one index whatever the policy's shape.
-- Every existing row belongs to the tenant 'default' (migration 0019).
-- Consumer groups stay the default tenant's for now: their tables hold no
-- tenant, and logbookd runs them with logbook.tenant = 'default'.

-- logbookd's admin connection (a role granted logbook_redactor) reads the
-- whole log for the live tail and for signed checkpoints. Both steps need
-- CREATEROLE unless done beforehand (docs/operations.md "Roles").
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'logbook_all_tenants') THEN
    CREATE ROLE logbook_all_tenants NOLOGIN;
  END IF;
  IF NOT pg_has_role('logbook_redactor', 'logbook_all_tenants', 'MEMBER') THEN
    GRANT logbook_all_tenants TO logbook_redactor;
  END IF;
END;
$$;

-- What the admin connection reads: the log and its head (the live tail),
-- and checkpoints (functions/add_checkpoint*.sql grant what signs them).
GRANT USAGE ON SCHEMA logbook TO logbook_all_tenants;
GRANT SELECT ON logbook.event_log, logbook.log_head, logbook.checkpoints,
  logbook.checkpoint_receipts TO logbook_all_tenants;

-- Every tenant that has written a stream: whether one tenant holds the
-- whole log, in which case its verification checks the log's positions and
-- checkpoints too. Names only; not tenant data.
CREATE TABLE logbook.tenants (
  tenant      text        PRIMARY KEY CHECK (tenant ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
  created_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO logbook.tenants (tenant) SELECT 'default' WHERE EXISTS (SELECT FROM logbook.streams);
GRANT SELECT ON logbook.tenants TO logbook_app;

ALTER TABLE logbook.streams
  ADD COLUMN tenant text NOT NULL DEFAULT 'default'
    CHECK (tenant ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$');
ALTER TABLE logbook.streams ALTER COLUMN tenant SET DEFAULT current_setting('logbook.tenant');
ALTER TABLE logbook.streams DROP CONSTRAINT streams_pkey,
  ADD CONSTRAINT streams_pkey PRIMARY KEY (stream_id, tenant);

ALTER TABLE logbook.snapshots
  ADD COLUMN tenant text NOT NULL DEFAULT 'default'
    CHECK (tenant ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$');
ALTER TABLE logbook.snapshots ALTER COLUMN tenant SET DEFAULT current_setting('logbook.tenant');
ALTER TABLE logbook.snapshots DROP CONSTRAINT snapshots_pkey,
  ADD CONSTRAINT snapshots_pkey PRIMARY KEY (stream_id, schema_version, stream_version, tenant);

ALTER TABLE logbook.event_log
  ADD CONSTRAINT event_log_tenant_check
    CHECK (tenant ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
  DROP CONSTRAINT event_log_stream_version_key,
  ADD CONSTRAINT event_log_stream_version_key UNIQUE (stream_id, stream_version, tenant),
  DROP CONSTRAINT event_log_event_id_key,
  ADD CONSTRAINT event_log_event_id_key UNIQUE (event_id, tenant);

-- The setting is read once per statement (an InitPlan), not once per row.
DO $$
DECLARE
  t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['event_log', 'streams', 'snapshots'] LOOP
    EXECUTE format('ALTER TABLE logbook.%I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE logbook.%I FORCE ROW LEVEL SECURITY', t);
    EXECUTE format($p$
      CREATE POLICY tenant_rows ON logbook.%I
        USING (tenant = (SELECT current_setting('logbook.tenant', true))
               OR (SELECT current_setting('logbook.tenant', true) = '*'
                          AND pg_has_role(session_user, 'logbook_all_tenants', 'MEMBER')))
        WITH CHECK (tenant = (SELECT current_setting('logbook.tenant', true)))$p$, t);
  END LOOP;
END;
$$;
