-- Run by every `apply-schema` after the migrations (idempotent, not a versioned migration): the
-- application role exists, may log in, owns nothing, is no superuser, and has exactly the
-- privileges the Auth service needs (auth-schema.md, Privileges) — now and for tables created later
-- by the admin role. Its password is set separately, from its Secret.
DO $role$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {{ app_user | literal }}) THEN
        CREATE ROLE {{ app_user | ident }} LOGIN;
    END IF;
END
$role$;
ALTER ROLE {{ app_user | ident }} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
GRANT CONNECT ON DATABASE {{ database | ident }} TO {{ app_user | ident }};
GRANT USAGE ON SCHEMA public TO {{ app_user | ident }};
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {{ app_user | ident }};
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {{ app_user | ident }};
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {{ app_user | ident }};
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {{ app_user | ident }};
