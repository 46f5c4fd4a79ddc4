-- `upgrade`, once freeze.sql is committed: end the app role's sessions (a transaction that wrote
-- before the freeze cannot commit after the backup's snapshot). It cannot log in again until the
-- switch; app-sessions.sql counts what is left until none is.
SELECT count(pg_terminate_backend(pid))
  FROM pg_stat_activity
 WHERE usename = {{ app_user | literal }}
   AND pid <> pg_backend_pid();
