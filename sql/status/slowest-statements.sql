-- The slowest statements of this database by mean execution time (runbook 8.1's first query, as
-- PostgreSQL 13 and later name the column: `mean_time` became `mean_exec_time`). Query texts are
-- pg_stat_statements' normalized ones (constants replaced by $n), shortened to 200 characters.
SELECT round(s.mean_exec_time::numeric, 2)::text AS mean_ms,
       s.calls::text AS calls,
       round(s.total_exec_time::numeric, 1)::text AS total_ms,
       s.rows::text AS "rows",
       coalesce(r.rolname, s.userid::text) AS "user",
       left(regexp_replace(s.query, '\s+', ' ', 'g'), 200) AS query
FROM pg_stat_statements s
LEFT JOIN pg_roles r ON r.oid = s.userid
WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
ORDER BY s.mean_exec_time DESC
LIMIT 10
