-- The roles of docs/operations.md "Roles" for deploy/compose.yaml's
-- PostgreSQL (run once, when its data volume is new): the owner runs the
-- migrations; logbookd logs in as a member of logbook_app, which the first
-- migration creates and grants. Development passwords only.
CREATE ROLE logbook_owner LOGIN PASSWORD 'logbook-dev';
GRANT CREATE ON DATABASE logbook TO logbook_owner;
CREATE ROLE logbook_app NOLOGIN;
CREATE ROLE logbookd LOGIN PASSWORD 'logbook-dev' IN ROLE logbook_app;
