-- Run by every `apply-schema` on the release's own server when its metrics exporter is on
-- (idempotent), after `login-role.sql` for the exporter's login: a member of pg_monitor (the
-- statistics views and functions) and of nothing else. A volume from before the exporter had a
-- login of its own gets it here.
GRANT pg_monitor TO {{ metrics_user | ident }};
GRANT CONNECT ON DATABASE {{ database | ident }} TO {{ metrics_user | ident }};
