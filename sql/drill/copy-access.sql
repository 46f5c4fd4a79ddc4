-- What a scratch database ($1) needs besides CREATE DATABASE to be like the live database ($2):
-- the live one's access list (PUBLIC's default rights revoked when the live one has a list of
-- its own, then each grant but its owner's) and its settings (ALTER DATABASE … SET), as
-- statements the server quoted (format %I, %L). In order.
SELECT stmt FROM (
  SELECT 0 AS o, format('REVOKE ALL ON DATABASE %I FROM PUBLIC', $1::text) AS stmt
    FROM pg_database d WHERE d.datname = $2::text AND d.datacl IS NOT NULL
  UNION ALL
  SELECT 1, format('GRANT %s ON DATABASE %I TO %s', a.privilege_type, $1::text,
                   CASE WHEN a.grantee = 0 THEN 'PUBLIC'
                        ELSE quote_ident(pg_get_userbyid(a.grantee)) END)
    FROM pg_database d, aclexplode(d.datacl) AS a
   WHERE d.datname = $2::text AND a.grantee <> d.datdba
  UNION ALL
  SELECT 2, format('ALTER DATABASE %I SET %I = %L', $1::text, split_part(c, '=', 1),
                   substr(c, strpos(c, '=') + 1))
    FROM pg_db_role_setting s
    JOIN pg_database d ON d.oid = s.setdatabase, unnest(s.setconfig) AS c
   WHERE d.datname = $2::text AND s.setrole = 0
) AS x ORDER BY o
