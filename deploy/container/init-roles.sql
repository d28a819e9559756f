-- The roles of docs/operations.md "Roles" for deploy/compose.yaml's
-- PostgreSQL (run once, when its data volume is new): the owner runs the
-- migrations; logbookd logs in as a member of logbook_app, which the
-- migrations grant what it needs, and for its admin connection (the live
-- tail over every tenant, redactions) as a member of logbook_redactor,
-- which reads every tenant. Development passwords only.
CREATE ROLE logbook_owner LOGIN PASSWORD 'logbook-dev';
GRANT CREATE ON DATABASE logbook TO logbook_owner;
CREATE ROLE logbook_app NOLOGIN;
CREATE ROLE logbook_redactor NOLOGIN;
CREATE ROLE logbook_all_tenants NOLOGIN;
GRANT logbook_all_tenants TO logbook_redactor;
CREATE ROLE logbookd LOGIN PASSWORD 'logbook-dev' IN ROLE logbook_app;
CREATE ROLE logbookd_admin LOGIN PASSWORD 'logbook-dev' IN ROLE logbook_redactor;
