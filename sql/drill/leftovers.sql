-- Copies an earlier restore drill left (interrupted hard, its process killed): the databases
-- whose comment is this drill's mark ($1).
SELECT d.datname
FROM pg_database d
JOIN pg_shdescription s ON s.objoid = d.oid AND s.classoid = 'pg_database'::regclass
WHERE s.description = $1
ORDER BY 1
