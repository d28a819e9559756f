-- Takes the next ticket, the next p_positions positions and the recorded_at
-- of their events, in one step no other writer can interleave with (under
-- the session advisory lock ticket_dispenser_lock(), released before it
-- returns), so tickets, positions and recorded_at increase together,
-- whichever logbookd instance asks. recorded_at is p_recorded_at, or with
-- NULL the database's clock, never earlier than the last ticket's. Returns a
-- NULL ticket, taking nothing, if p_recorded_at is earlier than that. The
-- transaction then holds its ticket's lock (ticket_lock_class(), ticket mod
-- 2^31) until it ends; later tickets wait for it in await_turn.
--
-- logbook.positions and logbook.recorded_at_micros are only moved by
-- setval, which WAL-logs the exact value: after a crash they resume at the
-- last value handed out before the last commit, where nextval would skip.
CREATE OR REPLACE FUNCTION logbook.take_ticket(p_positions integer, p_recorded_at timestamptz,
                                    OUT ticket bigint, OUT first_position bigint,
                                    OUT recorded_at_micros bigint, OUT recorded_at text)
LANGUAGE plpgsql AS $$
DECLARE
  v_last   bigint;
  v_micros bigint;
BEGIN
  IF p_positions < 1 THEN
    RAISE EXCEPTION 'logbook.take_ticket: p_positions must be at least 1, not %', p_positions;
  END IF;
  BEGIN
    PERFORM pg_advisory_lock(logbook.ticket_dispenser_lock());
    SELECT r.last_value INTO v_last FROM logbook.recorded_at_micros r;
    v_micros := (extract(epoch FROM coalesce(p_recorded_at, clock_timestamp())) * 1000000)::bigint;
    IF p_recorded_at IS NULL THEN
      v_micros := greatest(v_micros, v_last);
    END IF;
    IF v_micros >= v_last THEN
      IF v_micros > v_last THEN
        PERFORM setval('logbook.recorded_at_micros', v_micros);
      END IF;
      ticket := nextval('logbook.append_tickets');
      SELECT p.last_value + 1 INTO first_position FROM logbook.positions p;
      PERFORM setval('logbook.positions', first_position + p_positions - 1);
      PERFORM pg_advisory_xact_lock(logbook.ticket_lock_class(),
                                    (ticket % 2147483648)::integer);
    END IF;
    PERFORM pg_advisory_unlock(logbook.ticket_dispenser_lock());
  EXCEPTION WHEN OTHERS OR query_canceled THEN
    -- A session-level lock outlives the transaction: never leave it held
    -- (if the error came before it was taken, this only warns).
    PERFORM pg_advisory_unlock(logbook.ticket_dispenser_lock());
    RAISE;
  END;
  IF ticket IS NOT NULL THEN
    recorded_at_micros := v_micros;
    recorded_at := ('epoch'::timestamptz + v_micros * interval '1 microsecond')::text;
  END IF;
END;
$$;

-- Internal: called by the SECURITY DEFINER append and audit functions.
REVOKE ALL ON FUNCTION logbook.take_ticket(integer, timestamptz) FROM PUBLIC, logbook_app;
