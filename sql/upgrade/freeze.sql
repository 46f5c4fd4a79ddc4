-- `upgrade`, before its backup: the application may read the old server but no longer write to
-- it, so nothing it writes after the backup is lost when the Services move to the new server.
-- New transactions of the app role in this database are read-only; its open sessions end (the
-- application reconnects, read-only, and fails on writes until the switch). Idempotent.
ALTER ROLE {{ app_user | ident }} IN DATABASE {{ database | ident }} SET default_transaction_read_only = on;
SELECT count(pg_terminate_backend(pid))
  FROM pg_stat_activity
 WHERE usename = {{ app_user | literal }}
   AND datname = {{ database | literal }}
   AND pid <> pg_backend_pid();
