-- After restoring the rows of some tables: every foreign key from or to them must still hold
-- (the load ran with the checks off). A violation raises, and the whole restore rolls back.
SET LOCAL session_replication_role = DEFAULT;
DO $check$
DECLARE
    fk record;
    orphans bigint;
BEGIN
    FOR fk IN
        SELECT c.conname,
               c.conrelid::pg_catalog.regclass AS child,
               c.confrelid::pg_catalog.regclass AS parent,
               (SELECT pg_catalog.string_agg(pg_catalog.format('ch.%I', a.attname), ', ' ORDER BY k.n)
                  FROM pg_catalog.unnest(c.conkey) WITH ORDINALITY AS k(attnum, n)
                  JOIN pg_catalog.pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum) AS child_cols,
               (SELECT pg_catalog.string_agg(pg_catalog.format('pa.%I', a.attname), ', ' ORDER BY k.n)
                  FROM pg_catalog.unnest(c.confkey) WITH ORDINALITY AS k(attnum, n)
                  JOIN pg_catalog.pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.attnum) AS parent_cols
          FROM pg_catalog.pg_constraint c
         WHERE c.contype = 'f'
           AND (c.conrelid = ANY (ARRAY[{% for t in tables %}{{ ("public." ~ (t | ident)) | literal }}{% if not loop.last %}, {% endif %}{% endfor %}]::pg_catalog.regclass[])
             OR c.confrelid = ANY (ARRAY[{% for t in tables %}{{ ("public." ~ (t | ident)) | literal }}{% if not loop.last %}, {% endif %}{% endfor %}]::pg_catalog.regclass[]))
    LOOP
        EXECUTE pg_catalog.format(
            'SELECT pg_catalog.count(*) FROM %s ch WHERE (%s) IS NOT NULL AND NOT EXISTS (SELECT 1 FROM %s pa WHERE (%s) = (%s))',
            fk.child, fk.child_cols, fk.parent, fk.parent_cols, fk.child_cols)
        INTO orphans;
        IF orphans > 0 THEN
            RAISE EXCEPTION 'foreign key % of % has % rows without a match in % after the restore', fk.conname, fk.child, orphans, fk.parent
                USING HINT = 'restore the referenced tables too (back them up together with --table), or restore the whole database';
        END IF;
    END LOOP;
END
$check$;
