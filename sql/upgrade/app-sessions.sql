-- `upgrade`: the app role's sessions still open on this server, in any database (a terminated
-- backend leaves pg_stat_activity when it has rolled back and exited).
SELECT count(*)::bigint
  FROM pg_stat_activity
 WHERE usename = {{ app_user | literal }}
   AND pid <> pg_backend_pid();
