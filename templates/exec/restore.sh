# The restore pipeline, run with `sh -c` where the PostgreSQL tools are (the database pod, or this
# machine for --database-url). Arguments: INPUT USER DATABASE, and for a custom archive PRELUDE
# POSTLUDE and pg_restore's arguments.
#
# Everything runs in ONE transaction that only the last statement commits; psql stops at the
# first error (ON_ERROR_STOP), and PostgreSQL rolls back what was not committed when psql
# disconnects. Only after COMMIT succeeded does psql print the marker the tool waits for.
# - custom: the archive comes on stdin; pg_restore's SQL goes to psql between our BEGIN and
#   COMMIT. If the archive ends early or a tool fails, COMMIT is never sent.
# - sql, sql.gz: stdin is the whole script, BEGIN to marker, that phonebill-db wrote around a plain
#   backup's SQL after checking it (sql.gz: the same, gzip-compressed on its way to a pod). If it
#   ends early, its COMMIT never came.
set -eu
input=$1 user=$2 db=$3
shift 3
run_psql() {
    psql -X -q -w -v ON_ERROR_STOP=1 --username="$user" --dbname="$db" --output=/dev/null
}
case "$input" in
custom)
    prelude=$1 postlude=$2
    shift 2
    {
        printf '%s\n' 'BEGIN;' "$prelude"
        pg_restore --file=- "$@"
        printf '%s\n' "$postlude" 'COMMIT;' '\echo phonebill-db: committed'
    } | run_psql
    ;;
sql) run_psql ;;
sql.gz) gzip -dc | run_psql ;;
*)
    echo "phonebill-db-restore: unknown input '$input'" >&2
    exit 2
    ;;
esac
