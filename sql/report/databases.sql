-- Every database's size.
SELECT datname AS database, pg_database_size(oid)::text AS bytes,
       pg_size_pretty(pg_database_size(oid)) AS size
FROM pg_database
WHERE datallowconn
ORDER BY pg_database_size(oid) DESC
