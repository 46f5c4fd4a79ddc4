# `psql --app`, run with `sh -c` in the database pod: psql logged in as the app role itself (not
# the administrator acting as it, which `SET ROLE NONE` would undo). Arguments: the file that
# `phonebill-db` wrote the app's password to a moment before (0600, the pod's /tmp), then psql's
# arguments. The password goes from the file into psql's environment and the file is removed
# before psql starts: it is never in a command line (the API server's audit log holds exec
# commands) nor left behind.
set -eu
file=$1
shift
PGPASSWORD=$(cat -- "$file")
rm -f -- "$file"
export PGPASSWORD
exec psql "$@"
