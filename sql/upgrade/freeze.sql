-- `upgrade`, before its backup: the application may read the old server but no longer write to
-- it, so nothing it writes after the backup is lost when the Services move to the new server.
-- Privileges are checked at every statement, in open sessions too, whatever the session sets
-- (a read-only default could be switched off). Committed before sessions-end.sql runs; undone
-- by sql/app-role.sql (the app role's exact privileges). Idempotent.
REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA public FROM {{ app_user | ident }};
