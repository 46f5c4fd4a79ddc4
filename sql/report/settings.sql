-- The server's settings that are not built-in defaults, and where each was set.
SELECT name, setting, unit, source, sourcefile, pending_restart::text AS pending_restart
FROM pg_settings
WHERE source NOT IN ('default', 'override')
ORDER BY name
