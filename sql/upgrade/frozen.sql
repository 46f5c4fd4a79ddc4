-- Whether `upgrade` froze this server for the app role: it may not log in (freeze.sql), or a table
-- of the public schema is not writable for it (what earlier versions of the tool did; app-role.sql
-- grants INSERT on all of them).
SELECT NOT EXISTS (
           SELECT FROM pg_roles WHERE rolname = {{ app_user | literal }} AND rolcanlogin
       )
    OR EXISTS (
           SELECT FROM pg_tables
            WHERE schemaname = 'public'
              AND NOT has_table_privilege({{ app_user | literal }}, format('%I.%I', schemaname, tablename), 'INSERT')
       );
