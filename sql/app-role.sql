-- Run by every `apply-schema` after the migrations (idempotent, not a versioned migration), after
-- `login-role.sql` for the application role: exactly the privileges the Auth service needs
-- (docs/schema.md, Privileges) — now and for tables created later by the admin role.
GRANT CONNECT ON DATABASE {{ database | ident }} TO {{ app_user | ident }};
GRANT USAGE ON SCHEMA public TO {{ app_user | ident }};
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {{ app_user | ident }};
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {{ app_user | ident }};
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {{ app_user | ident }};
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {{ app_user | ident }};
-- The grants above reach every relation of the schema, an extension's too (pg_stat_statements'
-- views): the app keeps none of its own there (PUBLIC's SELECT, the extension's, stays). Run after
-- each apply-schema, so an extension created later loses them again.
DO $$
DECLARE
  rel regclass;
BEGIN
  FOR rel IN
    SELECT c.oid::regclass FROM pg_class c
      JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'
     WHERE c.relnamespace = 'public'::regnamespace
  LOOP
    EXECUTE format('REVOKE ALL ON %s FROM %I', rel, {{ app_user | literal }});
  END LOOP;
END
$$;
