-- The CREATE DATABASE of a scratch database ($1) made like the live database ($2): the same
-- owner, encoding and locale (libc, ICU, or 17's builtin provider), from template0 (what
-- pg_dump's archive expects), quoted by the server (format %I, %L). The row is read as JSON so
-- that one query serves 16 (daticulocale) and 17 (datlocale).
SELECT format('CREATE DATABASE %I OWNER %I TEMPLATE template0 ENCODING %L', $1::text,
              pg_get_userbyid(d.datdba), pg_encoding_to_char(d.encoding))
       || CASE j->>'datlocprovider'
            WHEN 'i' THEN format(' LOCALE_PROVIDER icu ICU_LOCALE %L LC_COLLATE %L LC_CTYPE %L',
                                 coalesce(j->>'datlocale', j->>'daticulocale'), d.datcollate, d.datctype)
            WHEN 'b' THEN format(' LOCALE_PROVIDER builtin BUILTIN_LOCALE %L LC_COLLATE %L LC_CTYPE %L',
                                 j->>'datlocale', d.datcollate, d.datctype)
            ELSE format(' LC_COLLATE %L LC_CTYPE %L', d.datcollate, d.datctype) END
FROM pg_database d, to_jsonb(d) AS j
WHERE d.datname = $2::text
