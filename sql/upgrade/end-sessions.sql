-- `upgrade`, once freeze.sql is committed: end the app role's sessions, so that a transaction
-- that wrote before the freeze cannot commit after the backup's snapshot. The application
-- reconnects and may read.
SELECT count(pg_terminate_backend(pid))
  FROM pg_stat_activity
 WHERE usename = {{ app_user | literal }}
   AND datname = {{ database | literal }}
   AND pid <> pg_backend_pid();
