-- Sessions by database, user and state (runbook 8.1's connection count, by state).
SELECT coalesce(datname, '') AS database, coalesce(usename, '') AS "user",
       coalesce(state, backend_type) AS state, count(*)::text AS sessions,
       coalesce(max(now() - state_change)::text, '') AS longest_in_state
FROM pg_stat_activity
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3
