# The restore pipeline, run with `sh -c` where the PostgreSQL tools are (the database pod, or this
# machine for --database-url). Arguments: FORMAT USER DATABASE PRELUDE POSTLUDE [pg_restore args].
#
# Everything runs in ONE transaction that only the last line commits: the SQL of the backup
# (pg_restore's output for a custom archive, the gunzipped file for plain SQL) goes to psql between
# our BEGIN and COMMIT. psql stops at the first error (ON_ERROR_STOP); if the file ends early or a
# tool fails, COMMIT is never sent and PostgreSQL rolls everything back when psql disconnects.
# Only after COMMIT succeeded does psql print the marker the tool waits for.
set -eu
format=$1 user=$2 db=$3 prelude=$4 postlude=$5
shift 5
{
    printf '%s\n' 'BEGIN;' "$prelude"
    if [ "$format" = custom ]; then pg_restore --file=- "$@"; else gzip -dc; fi
    printf '%s\n' "$postlude" 'COMMIT;' '\echo phonebill-db: committed'
} | psql -X -q -w -v ON_ERROR_STOP=1 --username="$user" --dbname="$db" --output=/dev/null
