-- Run by every `apply-schema` after the migrations (idempotent, not a versioned migration), after
-- `login-role.sql` for the application role: exactly the privileges the Auth service needs
-- (auth-schema.md, Privileges) — now and for tables created later by the admin role.
GRANT CONNECT ON DATABASE {{ database | ident }} TO {{ app_user | ident }};
GRANT USAGE ON SCHEMA public TO {{ app_user | ident }};
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {{ app_user | ident }};
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {{ app_user | ident }};
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {{ app_user | ident }};
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {{ app_user | ident }};
