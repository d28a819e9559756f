-- PER_STREAM runs (docs/consumer-groups.md "How it works"): a row of
-- consumer_group_pending may stand for a run of one stream's events instead
-- of one event, so that a group's backlog costs a few writes per run, not
-- several per event. A run is the target's events of stream_id from the
-- one at global_position (its first) up to version through_version,
-- `events` of them. A consumer claims a run as one row and gets its events
-- one at a time, the next when the one before is settled; which of them
-- are settled only the logbookd instance serving it knows, in memory.
-- `attempts` counts the deliveries of the run's first event.
--
-- A row whose through_version is NULL is one event, as before. An event
-- handed back (nacked, not acked in time, its consumer gone) leaves its run
-- as a row of its own, so retries, parking and every count work on single
-- events as they always have. A run still held past lease_until (its
-- instance is gone) is taken back as a row per event, each counted as one
-- delivery.
ALTER TABLE logbook.consumer_group_pending
  ADD COLUMN through_version bigint,
  ADD COLUMN events integer NOT NULL DEFAULT 1 CHECK (events >= 1),
  ADD CONSTRAINT consumer_group_pending_run_check CHECK (events = 1 OR through_version IS NOT NULL);
