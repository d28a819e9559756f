-- ROUND_ROBIN leases (docs/consumer-groups.md): a claim of fresh events
-- hands a consumer a run of them as one row here, not a row per event in
-- consumer_group_pending, so that a group's backlog costs a few writes per
-- hundred events. The row covers the target's events in (after_position,
-- through_position] (`events` of them); which of those are settled is kept
-- in the memory of the logbookd instance that serves the consumer, and the
-- row goes when the last one is. If it is still here after lease_until,
-- its instance is gone: another takes every event of it back into
-- consumer_group_pending, each counted as one delivery.
--
-- The group's frontier, consumer_groups.scanned_to, now means: every event
-- of the target at or below it is settled, pending or leased.
CREATE TABLE logbook.consumer_group_leases (
  lease_id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  group_name        text        NOT NULL REFERENCES logbook.consumer_groups ON DELETE CASCADE,
  consumer          text        NOT NULL,
  session           text        NOT NULL,
  after_position    bigint      NOT NULL,
  through_position  bigint      NOT NULL,
  events            integer     NOT NULL CHECK (events > 0),
  lease_until       timestamptz NOT NULL,
  CHECK (through_position > after_position)
);
CREATE INDEX consumer_group_leases_group_idx
  ON logbook.consumer_group_leases (group_name, after_position);

GRANT SELECT, INSERT, UPDATE, DELETE ON logbook.consumer_group_leases TO logbook_app;
