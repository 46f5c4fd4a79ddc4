-- The CREATE DATABASE of a scratch database ($1) made like the live database ($2): the same
-- owner, encoding and locale, from template0 (what pg_dump's archive expects), quoted by the
-- server (format %I, %L).
SELECT format('CREATE DATABASE %I OWNER %I TEMPLATE template0 ENCODING %L', $1::text,
              pg_get_userbyid(d.datdba), pg_encoding_to_char(d.encoding))
       || CASE WHEN d.datlocprovider = 'i'
               THEN format(' LOCALE_PROVIDER icu ICU_LOCALE %L LC_COLLATE %L LC_CTYPE %L',
                           d.daticulocale, d.datcollate, d.datctype)
               ELSE format(' LC_COLLATE %L LC_CTYPE %L', d.datcollate, d.datctype) END
FROM pg_database d
WHERE d.datname = $2::text
