-- Wake-ups for subscriptions: every transaction that moves the head of the
-- log sends NOTIFY logbook_events with the new last position. Delivered at
-- commit, so a listener never hears of events it cannot read yet. The
-- payload is only a wake-up: subscribers always read the events from
-- logbook.event_log by position.
CREATE FUNCTION logbook.notify_head_moved() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('logbook_events', NEW.last_position::text);
  RETURN NULL;
END;
$$;

CREATE TRIGGER log_head_notify AFTER UPDATE OF last_position ON logbook.log_head
  FOR EACH ROW EXECUTE FUNCTION logbook.notify_head_moved();
