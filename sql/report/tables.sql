-- The largest tables of this database, with their rows and vacuum state.
SELECT schemaname AS schema, relname AS "table",
       pg_total_relation_size(relid)::text AS bytes,
       pg_size_pretty(pg_total_relation_size(relid)) AS size,
       n_live_tup::text AS live_rows, n_dead_tup::text AS dead_rows,
       coalesce(greatest(last_vacuum, last_autovacuum)::text, '') AS last_vacuum,
       coalesce(greatest(last_analyze, last_autoanalyze)::text, '') AS last_analyze
FROM pg_stat_user_tables
ORDER BY pg_total_relation_size(relid) DESC
LIMIT 100
