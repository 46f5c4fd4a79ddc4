-- Lock waits: each waiting session with the session blocking it; query texts only when $1.
SELECT w.pid::text AS waiting_pid, coalesce(w.usename, '') AS waiting_user,
       coalesce((now() - w.query_start)::text, '') AS waiting_for,
       coalesce(w.wait_event_type || ':' || w.wait_event, '') AS wait_event,
       b.pid::text AS blocking_pid, coalesce(b.usename, '') AS blocking_user,
       coalesce(b.state, '') AS blocking_state,
       CASE WHEN $1 THEN w.query ELSE '(query texts: --with-queries)' END AS waiting_query,
       CASE WHEN $1 THEN b.query ELSE '(query texts: --with-queries)' END AS blocking_query
FROM pg_stat_activity w
CROSS JOIN LATERAL unnest(pg_blocking_pids(w.pid)) AS blocker(pid)
JOIN pg_stat_activity b ON b.pid = blocker.pid
ORDER BY w.query_start
