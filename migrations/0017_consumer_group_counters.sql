-- Deliveries and acks counted per consumer rather than on the group's row,
-- which every claim and ack of every consumer then had to lock in turn.
-- GetConsumerGroup sums them. And an index of the events in flight (or
-- whose lease ran out) by session: a claim counts what its consumer holds
-- and which streams are busy without reading every pending event.
CREATE TABLE logbook.consumer_group_counters (
  group_name  text   NOT NULL REFERENCES logbook.consumer_groups ON DELETE CASCADE,
  consumer    text   NOT NULL,
  delivered   bigint NOT NULL DEFAULT 0,
  acked       bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (group_name, consumer)
);
INSERT INTO logbook.consumer_group_counters (group_name, consumer, delivered, acked)
  SELECT group_name, '', delivered, acked FROM logbook.consumer_groups;
ALTER TABLE logbook.consumer_groups DROP COLUMN delivered, DROP COLUMN acked;
GRANT SELECT, INSERT, UPDATE, DELETE ON logbook.consumer_group_counters TO logbook_app;
CREATE INDEX consumer_group_pending_session_idx
  ON logbook.consumer_group_pending (group_name, session) WHERE session IS NOT NULL;
