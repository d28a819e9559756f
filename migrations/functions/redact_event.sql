-- Empties the data and metadata of the event at p_position and records why.
-- Runs as the schema owner (SECURITY DEFINER), so logbook_app can redact
-- without UPDATE rights on event_log; logbook.guard_event_update lets
-- exactly this change through. Returns false when the event is missing or
-- already redacted. logbookd calls it in the transaction that appends the
-- EventRedacted event to $audit, which verification requires.
CREATE OR REPLACE FUNCTION logbook.redact_event(p_position bigint, p_reason text) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM set_config('logbook.redacting', 'on', true);
  UPDATE logbook.event_log
     SET data = '', metadata = '', redaction_reason = p_reason
   WHERE global_position = p_position AND redaction_reason IS NULL;
  PERFORM set_config('logbook.redacting', 'off', true);
  RETURN FOUND;
END;
$$;

REVOKE ALL ON FUNCTION logbook.redact_event(bigint, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION logbook.redact_event(bigint, text) TO logbook_app;
