-- Extensions the Auth schema uses (auth-schema.md): uuid-ossp and pgcrypto; pg_stat_statements for
-- the troubleshooting queries (it needs shared_preload_libraries, which the dev ConfigMap sets).
CREATE EXTENSION IF NOT EXISTS "uuid-ossp";
CREATE EXTENSION IF NOT EXISTS pgcrypto;
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
