-- Redacts event p_stream_id@p_stream_version: empties its data and
-- metadata and sets redaction_reason (the guard_event_update trigger lets
-- exactly that through, and the receipt and digests stay), then records an
-- EventRedacted event in $audit ({"event_id", "global_position", "reason",
-- "stream_id", "stream_version"}) written by p_written_by, the principal
-- who asked. Returns one row: outcome 'redacted',
-- 'no_event', 'already_redacted' or 'system_stream' (nothing changed), the
-- event's position and the audit event's. Runs as the owner (SECURITY
-- DEFINER); only logbook_redactor may call it, the role logbookd's admin
-- connection uses, never the application role.
CREATE OR REPLACE FUNCTION logbook.redact(p_stream_id text, p_stream_version bigint,
                                          p_reason text, p_written_by text)
RETURNS TABLE (outcome text, global_position bigint, audit_position bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_event record;
BEGIN
  IF left(p_stream_id, 1) = '$' THEN
    RETURN QUERY SELECT 'system_stream'::text, NULL::bigint, NULL::bigint;
    RETURN;
  END IF;
  SELECT e.global_position, e.event_id, e.redaction_reason IS NOT NULL AS redacted
    INTO v_event
    FROM logbook.event_log e
   WHERE e.stream_id = p_stream_id AND e.stream_version = p_stream_version
     FOR UPDATE;
  IF NOT FOUND THEN
    RETURN QUERY SELECT 'no_event'::text, NULL::bigint, NULL::bigint;
    RETURN;
  END IF;
  IF v_event.redacted THEN
    RETURN QUERY SELECT 'already_redacted'::text, v_event.global_position, NULL::bigint;
    RETURN;
  END IF;
  PERFORM set_config('logbook.redacting', 'on', true);
  UPDATE logbook.event_log
     SET data = '', metadata = '', redaction_reason = p_reason
   WHERE event_log.global_position = v_event.global_position;
  PERFORM set_config('logbook.redacting', 'off', true);
  RETURN QUERY SELECT 'redacted'::text, v_event.global_position,
    logbook.append_audit('EventRedacted',
      format('{"event_id":%s,"global_position":%s,"reason":%s,"stream_id":%s,"stream_version":%s}',
             to_json(v_event.event_id::text), v_event.global_position, to_json(p_reason),
             to_json(p_stream_id), p_stream_version),
      p_written_by);
END;
$$;

REVOKE ALL ON FUNCTION logbook.redact(text, bigint, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION logbook.redact(text, bigint, text, text) TO logbook_redactor;
