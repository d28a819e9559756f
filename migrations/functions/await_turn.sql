-- Returns once every transaction with a ticket before p_ticket has ended
-- (committed, having published, or rolled back): ticket T's transaction
-- holds the advisory lock (ticket_lock_class(), T mod 2^31) until it ends,
-- and this takes each earlier one in shared mode. Takes no other lock.
CREATE OR REPLACE FUNCTION logbook.await_turn(p_ticket bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  v_next bigint;
BEGIN
  SELECT h.last_ticket + 1 INTO v_next FROM logbook.log_head h;
  WHILE v_next < p_ticket LOOP
    -- Granted once ticket v_next's transaction has ended.
    PERFORM pg_advisory_xact_lock_shared(logbook.ticket_lock_class(),
                                         (v_next % 2147483648)::integer);
    SELECT greatest(v_next + 1, h.last_ticket + 1) INTO v_next FROM logbook.log_head h;
  END LOOP;
END;
$$;

-- Internal: called by the SECURITY DEFINER append and audit functions.
REVOKE ALL ON FUNCTION logbook.await_turn(bigint) FROM PUBLIC, logbook_app;
