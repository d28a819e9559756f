-- Consumer groups per tenant (docs/security.md "Tenants"): a group belongs
-- to the tenant that created it, group names are unique per tenant, and
-- row-level security keyed on logbook.tenant (migration 0021) keeps each
-- tenant's groups, pending and parked events, members, counters and leases
-- apart, as it does their streams. logbookd runs a group's statements with
-- logbook.tenant set to the group's tenant, so a group reads its tenant's
-- events only.
--
-- A group is known by its key, held in group_name: the bare name for the
-- tenant 'default' ("orders-worker"), "tenant/name" for every other
-- ("acme/orders-worker"). So every key and index stays as it was, one
-- column wide, and names are unique per tenant. Each row's tenant column
-- must agree with its key (the check below): a row cannot name another
-- tenant's group, even through a foreign key, which row-level security
-- does not cover. Every existing group is the tenant 'default''s.

ALTER TABLE logbook.consumer_groups DROP CONSTRAINT consumer_groups_group_name_check;

DO $$
DECLARE
  t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['consumer_groups', 'consumer_group_pending', 'consumer_group_parked',
                           'consumer_group_members', 'consumer_group_counters',
                           'consumer_group_leases'] LOOP
    EXECUTE format($a$
      ALTER TABLE logbook.%I ADD COLUMN tenant text NOT NULL DEFAULT 'default',
        ADD CONSTRAINT %I CHECK (
          tenant ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'
          AND CASE WHEN tenant = 'default' THEN group_name ~ '^[A-Za-z0-9._-]{1,128}$'
                   ELSE starts_with(group_name, tenant || '/')
                        AND substr(group_name, length(tenant) + 2) ~ '^[A-Za-z0-9._-]{1,128}$'
              END)$a$,
      t, t || '_tenant_check');
    EXECUTE format($a$
      ALTER TABLE logbook.%I ALTER COLUMN tenant SET DEFAULT current_setting('logbook.tenant')$a$,
      t);
    EXECUTE format('ALTER TABLE logbook.%I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE logbook.%I FORCE ROW LEVEL SECURITY', t);
    -- The setting is read once per statement (an InitPlan), not once per row.
    EXECUTE format($p$
      CREATE POLICY tenant_rows ON logbook.%I
        USING (tenant = (SELECT current_setting('logbook.tenant', true)))
        WITH CHECK (tenant = (SELECT current_setting('logbook.tenant', true)))$p$, t);
  END LOOP;
END;
$$;
