-- Restoring a whole database: first drop every table and view of the user's schemas (not those of
-- extensions), inside the restore's transaction. Objects made after the backup was taken would
-- otherwise block the restore's own DROPs (a foreign key to a table it recreates) or outlive it;
-- afterwards the database holds what the backup holds, as if it had been recreated.
DO $drop$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT pg_catalog.format('%I.%I', n.nspname, c.relname) AS name, c.relkind
          FROM pg_catalog.pg_class c
          JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
           AND NOT c.relispartition
           AND n.nspname <> 'information_schema'
           AND n.nspname !~ '^pg_'
           AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                            WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                              AND d.objid = c.oid AND d.deptype = 'e')
    LOOP
        EXECUTE pg_catalog.format(
            CASE r.relkind
                WHEN 'v' THEN 'DROP VIEW IF EXISTS %s CASCADE'
                WHEN 'm' THEN 'DROP MATERIALIZED VIEW IF EXISTS %s CASCADE'
                WHEN 'f' THEN 'DROP FOREIGN TABLE IF EXISTS %s CASCADE'
                ELSE 'DROP TABLE IF EXISTS %s CASCADE'
            END, r.name);
    END LOOP;
END
$drop$;
