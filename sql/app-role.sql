-- Run by every `apply-schema` after the migrations (idempotent, not a versioned migration): the
-- application role exists, may log in, owns nothing, is no superuser, and has exactly the
-- privileges the Auth service needs (auth-schema.md, Privileges) — now and for tables created later
-- by the admin role. Its password is set separately, from its Secret.
DO $role$
DECLARE
    r pg_roles%ROWTYPE;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {{ app_user | literal }}) THEN
        CREATE ROLE {{ app_user | ident }} LOGIN;
    END IF;
    -- Only attributes that are wrong are named: a managed server's administrator (Azure's
    -- azure_pg_admin) is no superuser, and PostgreSQL refuses SUPERUSER, REPLICATION and BYPASSRLS
    -- in ALTER ROLE from anyone else, even to switch them off.
    SELECT * INTO r FROM pg_roles WHERE rolname = {{ app_user | literal }};
    IF r.rolsuper OR r.rolreplication OR r.rolbypassrls THEN
        EXECUTE format('ALTER ROLE %I NOSUPERUSER NOREPLICATION NOBYPASSRLS', {{ app_user | literal }});
    END IF;
    IF NOT r.rolcanlogin OR r.rolcreatedb OR r.rolcreaterole THEN
        EXECUTE format('ALTER ROLE %I LOGIN NOCREATEDB NOCREATEROLE', {{ app_user | literal }});
    END IF;
END
$role$;
GRANT CONNECT ON DATABASE {{ database | ident }} TO {{ app_user | ident }};
GRANT USAGE ON SCHEMA public TO {{ app_user | ident }};
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {{ app_user | ident }};
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {{ app_user | ident }};
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {{ app_user | ident }};
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {{ app_user | ident }};
