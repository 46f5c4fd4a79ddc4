-- Run by every `apply-schema` on the release's own server when its metrics exporter is on
-- (idempotent): the exporter's login exists, may log in, owns nothing, is no superuser, and is a
-- member of pg_monitor (the statistics views and functions) and of nothing else. Its password is
-- set separately, from the release's Secret. A volume from before the exporter had a login of
-- its own gets it here.
DO $role$
DECLARE
    r pg_roles%ROWTYPE;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {{ metrics_user | literal }}) THEN
        CREATE ROLE {{ metrics_user | ident }} LOGIN;
    END IF;
    SELECT * INTO r FROM pg_roles WHERE rolname = {{ metrics_user | literal }};
    IF r.rolsuper OR r.rolreplication OR r.rolbypassrls THEN
        EXECUTE format('ALTER ROLE %I NOSUPERUSER NOREPLICATION NOBYPASSRLS', {{ metrics_user | literal }});
    END IF;
    IF NOT r.rolcanlogin OR r.rolcreatedb OR r.rolcreaterole THEN
        EXECUTE format('ALTER ROLE %I LOGIN NOCREATEDB NOCREATEROLE', {{ metrics_user | literal }});
    END IF;
END
$role$;
GRANT pg_monitor TO {{ metrics_user | ident }};
GRANT CONNECT ON DATABASE {{ database | ident }} TO {{ metrics_user | ident }};
