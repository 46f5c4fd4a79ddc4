-- Whether `upgrade` froze this server for the app role: a table of the public schema it may not
-- write to (sql/app-role.sql grants INSERT on all of them).
SELECT EXISTS (
    SELECT FROM pg_tables
     WHERE schemaname = 'public'
       AND NOT has_table_privilege({{ app_user | literal }}, format('%I.%I', schemaname, tablename), 'INSERT')
);
