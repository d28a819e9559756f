-- Appends one event of type p_type with JSON p_data to $audit, at the
-- current time, written by p_written_by (the principal who asked for the
-- deletion or redaction it records) in the session's tenant (the $audit
-- stream is the tenant's own, current_tenant()), and returns its
-- global position: the only way an event gets into a system stream. Locks $audit's row (or, before its first event, the
-- new-stream advisory lock), hashes the receipt here (receipt_hash), takes a
-- ticket and writes and publishes it as any append (write_appends). Its id
-- is a UUIDv7, as logbookd's are. Internal: for delete_stream and redact,
-- which run as the owner.
CREATE OR REPLACE FUNCTION logbook.append_audit(p_type text, p_data text, p_written_by text)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  v_stream   constant text := '$audit';
  v_version  bigint;
  v_previous bytea;
  v_ticket   record;
  v_at       timestamptz;
  v_id       bytea;
  v_data     bytea := convert_to(p_data, 'UTF8');
  v_event    logbook.new_event;
BEGIN
  SELECT s.version, s.head_hash INTO v_version, v_previous
    FROM logbook.streams s WHERE s.stream_id = v_stream FOR UPDATE;
  IF NOT FOUND THEN
    PERFORM pg_advisory_xact_lock(logbook.new_stream_lock_class(), hashtext(v_stream));
    SELECT s.version, s.head_hash INTO v_version, v_previous
      FROM logbook.streams s WHERE s.stream_id = v_stream FOR UPDATE;
  END IF;
  v_version := coalesce(v_version + 1, 0);
  v_previous := coalesce(v_previous,
                         '\x0000000000000000000000000000000000000000000000000000000000000000');

  SELECT * INTO v_ticket FROM logbook.take_ticket(1, NULL);
  v_at := 'epoch'::timestamptz + v_ticket.recorded_at_micros * interval '1 microsecond';
  -- UUIDv7: 48 bits of Unix milliseconds, version 7, then random bits.
  v_id := overlay(uuid_send(gen_random_uuid())
                  PLACING substring(int8send(v_ticket.recorded_at_micros / 1000) FROM 3)
                  FROM 1 FOR 6);
  v_id := set_byte(v_id, 6, (get_byte(v_id, 6) & 15) | 112);

  v_event := ROW(v_stream, v_version, encode(v_id, 'hex')::uuid, p_type, 'application/json',
                 NULL, NULL, NULL, v_data, ''::bytea, v_previous, NULL, sha256(v_data),
                 sha256(''::bytea), logbook.current_tenant(), p_written_by);
  v_event.receipt_hash := logbook.receipt_hash(
    v_previous, v_stream, v_version, v_event.event_id, p_type, 'application/json', v_at, NULL,
    NULL, NULL, v_event.data_digest, v_event.metadata_digest, v_event.tenant,
    v_event.written_by);
  PERFORM logbook.write_appends(v_ticket.ticket, v_ticket.first_position, ARRAY[v_event], v_at,
                                ARRAY[v_stream], ARRAY[v_version], ARRAY[1::bigint],
                                v_event.receipt_hash);
  RETURN v_ticket.first_position;
END;
$$;

REVOKE ALL ON FUNCTION logbook.append_audit(text, text, text) FROM PUBLIC;
