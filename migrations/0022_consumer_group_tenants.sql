-- Consumer groups per tenant (docs/security.md "Tenants"): a group belongs
-- to the tenant that created it, group names are unique per tenant, and
-- row-level security keyed on logbook.tenant (migration 0021) keeps each
-- tenant's groups, deliveries, parked events, members, counters and leases
-- apart, as for its streams. A group reads its tenant's events only, since
-- logbookd runs its statements with logbook.tenant set to the group's
-- tenant. Every existing group is the tenant 'default''s.

DO $$
DECLARE
  t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['consumer_groups', 'consumer_group_pending', 'consumer_group_parked',
                           'consumer_group_members', 'consumer_group_counters',
                           'consumer_group_leases'] LOOP
    EXECUTE format($a$
      ALTER TABLE logbook.%I ADD COLUMN tenant text NOT NULL DEFAULT 'default'
        CHECK (tenant ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$')$a$, t);
    EXECUTE format($a$
      ALTER TABLE logbook.%I ALTER COLUMN tenant SET DEFAULT current_setting('logbook.tenant')$a$,
      t);
  END LOOP;
END;
$$;

-- Keys with the tenant; the tables that refer to a group refer to it by
-- name and tenant (dropping the old key drops their foreign keys).
ALTER TABLE logbook.consumer_groups DROP CONSTRAINT consumer_groups_pkey CASCADE;
ALTER TABLE logbook.consumer_groups ADD CONSTRAINT consumer_groups_pkey
  PRIMARY KEY (group_name, tenant);
ALTER TABLE logbook.consumer_group_pending DROP CONSTRAINT consumer_group_pending_pkey,
  ADD CONSTRAINT consumer_group_pending_pkey PRIMARY KEY (group_name, global_position, tenant);
ALTER TABLE logbook.consumer_group_parked DROP CONSTRAINT consumer_group_parked_pkey,
  ADD CONSTRAINT consumer_group_parked_pkey PRIMARY KEY (group_name, global_position, tenant);
ALTER TABLE logbook.consumer_group_members DROP CONSTRAINT consumer_group_members_pkey,
  ADD CONSTRAINT consumer_group_members_pkey PRIMARY KEY (group_name, consumer, tenant);
ALTER TABLE logbook.consumer_group_counters DROP CONSTRAINT consumer_group_counters_pkey,
  ADD CONSTRAINT consumer_group_counters_pkey PRIMARY KEY (group_name, consumer, tenant);

DO $$
DECLARE
  t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['consumer_group_pending', 'consumer_group_parked',
                           'consumer_group_members', 'consumer_group_counters',
                           'consumer_group_leases'] LOOP
    EXECUTE format($a$
      ALTER TABLE logbook.%I ADD CONSTRAINT %I FOREIGN KEY (group_name, tenant)
        REFERENCES logbook.consumer_groups (group_name, tenant) ON DELETE CASCADE$a$,
      t, t || '_group_fkey');
  END LOOP;
  FOREACH t IN ARRAY ARRAY['consumer_groups', 'consumer_group_pending', 'consumer_group_parked',
                           'consumer_group_members', 'consumer_group_counters',
                           'consumer_group_leases'] LOOP
    EXECUTE format('ALTER TABLE logbook.%I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE logbook.%I FORCE ROW LEVEL SECURITY', t);
    EXECUTE format($p$
      CREATE POLICY tenant_rows ON logbook.%I
        USING (tenant = (SELECT current_setting('logbook.tenant', true)))
        WITH CHECK (tenant = (SELECT current_setting('logbook.tenant', true)))$p$, t);
  END LOOP;
END;
$$;
