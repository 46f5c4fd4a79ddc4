-- Every client session and what it runs (only with --with-queries: query texts hold data).
SELECT pid::text, coalesce(usename, '') AS "user", coalesce(datname, '') AS database,
       coalesce(application_name, '') AS application, coalesce(client_addr::text, '') AS client,
       coalesce(state, '') AS state, coalesce((now() - query_start)::text, '') AS running_for,
       coalesce(wait_event_type || ':' || wait_event, '') AS wait_event, query
FROM pg_stat_activity
WHERE backend_type = 'client backend'
ORDER BY query_start
