-- Fresh planner statistics for consumer_group_pending, which grows from
-- empty to a million rows faster than autovacuum's statistics follow.
-- logbookd calls it when a group's pending events have doubled since it
-- last did: with statistics from when the table was near empty, the
-- planner takes it for a table of a few rows (row-level security's filter
-- on the tenant, of unknown selectivity without statistics, makes that one
-- row) and reads it whole and sorts, where the index would stop at once.
-- Runs as the owner (SECURITY DEFINER): only the owner may ANALYZE.
CREATE OR REPLACE FUNCTION logbook.analyze_consumer_groups() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  ANALYZE logbook.consumer_group_pending;
END;
$$;
REVOKE ALL ON FUNCTION logbook.analyze_consumer_groups() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION logbook.analyze_consumer_groups() TO logbook_app;
