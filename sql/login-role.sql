-- A login role of the release's that is no administrator (the application's, the metrics
-- exporter's): it exists, may log in, owns nothing, is no superuser, may not create databases or
-- roles. Run before each such role's grants (`app-role.sql`, `metrics-role.sql`) by every
-- `apply-schema`; idempotent. Its password is set separately, from its Secret.
DO $role$
DECLARE
    r pg_roles%ROWTYPE;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {{ role | literal }}) THEN
        EXECUTE format('CREATE ROLE %I LOGIN', {{ role | literal }});
    END IF;
    -- Only attributes that are wrong are named: a managed server's administrator (Azure's
    -- azure_pg_admin) is no superuser, and PostgreSQL refuses SUPERUSER, REPLICATION and BYPASSRLS
    -- in ALTER ROLE from anyone else, even to switch them off.
    SELECT * INTO r FROM pg_roles WHERE rolname = {{ role | literal }};
    IF r.rolsuper OR r.rolreplication OR r.rolbypassrls THEN
        EXECUTE format('ALTER ROLE %I NOSUPERUSER NOREPLICATION NOBYPASSRLS', {{ role | literal }});
    END IF;
    IF NOT r.rolcanlogin OR r.rolcreatedb OR r.rolcreaterole THEN
        EXECUTE format('ALTER ROLE %I LOGIN NOCREATEDB NOCREATEROLE', {{ role | literal }});
    END IF;
END
$role$;
