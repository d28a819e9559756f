-- The tenant the session's logbook.tenant names (migrations/0021_tenants.sql):
-- what the functions that write or verify work on. Raises (SQLSTATE LB003)
-- when it names none: unset, or '*' (every tenant, which only reads).
CREATE OR REPLACE FUNCTION logbook.current_tenant() RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
  v_tenant text := nullif(current_setting('logbook.tenant', true), '');
BEGIN
  IF v_tenant IS NULL OR v_tenant = '*' THEN
    RAISE EXCEPTION 'logbook: set logbook.tenant to one tenant first (it is %)',
                    coalesce(quote_literal(v_tenant), 'unset')
      USING ERRCODE = 'LB003',
            HINT = 'SET logbook.tenant = ''default''; every row so far is the tenant default''s';
  END IF;
  RETURN v_tenant;
END;
$$;
