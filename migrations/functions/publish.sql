-- Publishes positions p_first_position..p_last_position of ticket p_ticket:
-- waits for every earlier ticket (await_turn), records the positions between
-- the head and p_first_position as a gap (a writer that took them rolled
-- back), and moves the head, whose NOTIFY wakes subscribers at commit. So
-- transactions that write events become visible in position order: once a
-- reader has been given position P, no lower position appears later. Locks
-- logbook.log_head's row until the transaction ends. Raises SQLSTATE LB001
-- if p_recorded_at is before the head's: recorded_at never goes backwards.
CREATE OR REPLACE FUNCTION logbook.publish(p_ticket bigint, p_first_position bigint,
                                p_last_position bigint, p_recorded_at timestamptz)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  v_last      bigint;
  v_last_time timestamptz;
BEGIN
  PERFORM logbook.await_turn(p_ticket);
  SELECT h.last_position, h.last_recorded_at INTO v_last, v_last_time
    FROM logbook.log_head h FOR UPDATE;
  IF p_recorded_at < v_last_time THEN
    RAISE EXCEPTION 'logbook: recorded_at % is before the log''s last %', p_recorded_at, v_last_time
      USING ERRCODE = 'LB001';
  END IF;
  IF p_first_position > v_last + 1 THEN
    INSERT INTO logbook.position_gaps (first_position, last_position)
    VALUES (v_last + 1, p_first_position - 1);
  END IF;
  UPDATE logbook.log_head
     SET last_position = p_last_position, last_ticket = p_ticket,
         last_recorded_at = p_recorded_at;
END;
$$;

-- Internal: called by the SECURITY DEFINER append and audit functions.
REVOKE ALL ON FUNCTION logbook.publish(bigint, bigint, bigint, timestamptz) FROM PUBLIC, logbook_app;
