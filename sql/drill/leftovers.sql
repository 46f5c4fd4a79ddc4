-- Databases this tool marked ($1: the comment it gave them): an interrupted drill's copy or
-- restore's shadow (dropped by the next run), a restore's previous database (kept until
-- `restore --drop-previous` or the next restore); with their sizes.
SELECT d.datname, pg_database_size(d.oid)
FROM pg_database d
JOIN pg_shdescription s ON s.objoid = d.oid AND s.classoid = 'pg_database'::regclass
WHERE s.description = $1
ORDER BY 1
