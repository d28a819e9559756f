-- Trigger function (AFTER UPDATE OF last_position ON logbook.log_head):
-- NOTIFY logbook_events with the new head position. Delivered at commit, so
-- a listener never hears of events it cannot read yet. The payload is only a
-- wake-up: subscribers always read events from logbook.event_log by position
-- (store/src/log_watcher.cc LISTENs on this channel).
CREATE OR REPLACE FUNCTION logbook.notify_head_moved() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('logbook_events', NEW.last_position::text);
  RETURN NULL;
END;
$$;
