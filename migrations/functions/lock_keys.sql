-- The advisory lock keys of Logbook's SQL functions, named in one place.
-- PostgreSQL has one space of advisory locks per database; keys with two
-- int4 parts (a class and a key within it) and single int8 keys never
-- collide with each other.
--
--   ticket_lock_class()      (27746 'lb', ticket mod 2^31): held by the
--                            transaction holding that ticket until it ends
--                            (take_ticket); await_turn waits for it.
--   new_stream_lock_class()  (27747, hashtext(stream id)): held while a
--                            transaction creates that stream
--                            (load_for_append), so two writers creating one
--                            stream take turns.
--   ticket_dispenser_lock()  7809643502356145524 ('lbticket'), a session
--                            lock held only inside take_ticket while it
--                            hands out a ticket.
--   checkpoint_lock()        7809914003842624368 ('lbcheckp'): held by the
--                            transaction that signs a checkpoint, so two
--                            logbookd instances sign one after the other.
--
-- `logbook migrate up` holds the session lock 0x6c6f67626f6f6b ('logbook')
-- while it migrates; it is taken before this schema exists, so it lives in
-- store/src/migrations.cc.

CREATE OR REPLACE FUNCTION logbook.ticket_lock_class() RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT 27746 $$;

CREATE OR REPLACE FUNCTION logbook.new_stream_lock_class() RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT 27747 $$;

CREATE OR REPLACE FUNCTION logbook.ticket_dispenser_lock() RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT 7809643502356145524 $$;

CREATE OR REPLACE FUNCTION logbook.checkpoint_lock() RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT 7809914003842624368 $$;

GRANT EXECUTE ON FUNCTION logbook.ticket_lock_class(), logbook.new_stream_lock_class(),
                          logbook.ticket_dispenser_lock(), logbook.checkpoint_lock()
  TO logbook_app;
