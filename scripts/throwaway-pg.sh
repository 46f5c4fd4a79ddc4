#!/usr/bin/env bash
# Start throwaway PostgreSQL servers for the tests; sourced by scripts/test.sh.
#
# The servers are PostgreSQL 16, the major version of the pod's image (scripts/pg16-tools.sh
# installs it); one more is Debian's 15, where a test needs an older server on purpose.
#
# After `source scripts/throwaway-pg.sh`, the server runs on 127.0.0.1:$PHONEBILL_TEST_PG_PORT with
# - the dev profile's settings (shared_buffers 256MB, effective_cache_size 1GB, max_connections 100,
#   work_mem 4MB, maintenance_work_mem 64MB, Asia/Seoul, pg_stat_statements preloaded), fsync off;
# - TLS on with a certificate for `localhost` only (DNS name, no IP address) signed by a CA made here:
#   $PHONEBILL_TEST_PG_CA is that CA, $PHONEBILL_TEST_PG_OTHER_CA an unrelated one (wrong-CA tests);
# - superuser `postgres` with password $PHONEBILL_TEST_PG_PASSWORD (scram-sha-256 over TCP);
# - a database `tls_only` that refuses connections without TLS (pg_hba `hostnossl ... reject`);
# - this machine's own network address ($PHONEBILL_TEST_POD_IP, not loopback), where every
#   connection without TLS is refused: the fake's pods have it as their podIP, so what runs "in the
#   pod" reaches the server off its loopback (a connection to a local address comes from that
#   address), as the release's own pg_hba.conf treats it (TLS required);
# - a second server on $PHONEBILL_TEST_PLAIN_PG_PORT with initdb's defaults (no TLS, no profile
#   settings), the same superuser password: what a CI job's plain `postgres:16` container looks like;
# - a third, Debian's PostgreSQL 15 with initdb's defaults, on $PHONEBILL_TEST_OLD_PG_PORT (the same
#   password): a server older than the tools; its programs are in $PHONEBILL_TEST_OLD_PG_BIN (also
#   the old side of a major upgrade, and a pg_dump older than the 16 servers).
# $PHONEBILL_TEST_PG_BIN is the 16 servers' bin directory (psql, pg_dump, pg_restore, initdb, …) and
# $PHONEBILL_TEST_PG_MAJOR their major version. An EXIT trap stops the servers and removes their
# directory.
set -euo pipefail

old_pg_bin() { ls -d /usr/lib/postgresql/15/bin 2>/dev/null | tail -1; }
if [ -z "$(old_pg_bin)" ] || ! command -v openssl >/dev/null; then
  echo "installing PostgreSQL 15 (and openssl) from Debian's packages" >&2
  sudo_=""; [ "$(id -u)" = 0 ] || sudo_="sudo"
  [ -n "${apt_updated:-}" ] || $sudo_ apt-get update -qq  # scripts/test.sh may have run it
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq --no-install-recommends \
    postgresql-15 postgresql-contrib openssl >/dev/null
fi
PHONEBILL_TEST_OLD_PG_BIN="$(old_pg_bin)"
source "$(dirname "${BASH_SOURCE[0]}")/pg16-tools.sh"
PHONEBILL_TEST_PG_BIN="$PG16_BIN"
PHONEBILL_TEST_PG_MAJOR="$("$PHONEBILL_TEST_PG_BIN/postgres" --version | sed -E 's/.* ([0-9]+)\..*/\1/')"

# initdb and postgres refuse to run as root: as root, run them as the `postgres` user.
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

# This machine's first IPv4 address that is not loopback: what tests use as the pod's address.
PHONEBILL_TEST_POD_IP="$(hostname -I 2>/dev/null | tr ' ' '\n' | grep -E '^[0-9]+(\.[0-9]+){3}$' | grep -v '^127\.' | head -1)"
if [ -z "$PHONEBILL_TEST_POD_IP" ]; then
  echo "this machine has no IPv4 address besides loopback; the tests need one as the pod's address" >&2
  exit 1
fi

pg_dir="$(mktemp -d /tmp/phonebill-pg.XXXXXX)"
chmod 755 "$pg_dir"
# A clone in a directory only root may enter (`mktemp -d` makes them 0700): the `postgres` user
# cannot run the pinned server from there, so this run uses a copy beside its data (removed with it).
if [ "$(id -u)" = 0 ] && ! runuser -u postgres -- test -x "$PHONEBILL_TEST_PG_BIN/initdb"; then
  cp -a "$(dirname "$PHONEBILL_TEST_PG_BIN")" "$pg_dir/pg16"
  chmod -R a+rX "$pg_dir/pg16"
  PHONEBILL_TEST_PG_BIN="$pg_dir/pg16/bin"
  echo "PostgreSQL 16 copied to $pg_dir/pg16: the postgres user cannot reach $(dirname "$PG16_BIN")" >&2
fi
PHONEBILL_TEST_PG_PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
PHONEBILL_TEST_PG_PASSWORD="throwaway-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"

# Certificates: a CA, a server certificate for DNS:localhost signed by it, and an unrelated CA.
(
  cd "$pg_dir"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=phonebill test CA" \
    -keyout ca.key -out ca.crt 2>/dev/null
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=unrelated CA" \
    -keyout other-ca.key -out other-ca.crt 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout server.key -out server.csr 2>/dev/null
  printf 'subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > server.ext
  openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
    -extfile server.ext -out server.crt 2>/dev/null
  chmod 600 server.key
  printf '%s\n' "$PHONEBILL_TEST_PG_PASSWORD" > pwfile
)
if [ "$(id -u)" = 0 ]; then chown -R postgres: "$pg_dir"; fi

as_pg "$PHONEBILL_TEST_PG_BIN/initdb" -D "$pg_dir/data" -U postgres --pwfile="$pg_dir/pwfile" \
  --auth-host=scram-sha-256 --auth-local=peer -E UTF8 --locale=C.UTF-8 >/dev/null
cat >> "$pg_dir/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1,$PHONEBILL_TEST_POD_IP'
port = $PHONEBILL_TEST_PG_PORT
unix_socket_directories = '$pg_dir'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 100
shared_buffers = 256MB
effective_cache_size = 1GB
work_mem = 4MB
maintenance_work_mem = 64MB
timezone = 'Asia/Seoul'
log_timezone = 'Asia/Seoul'
shared_preload_libraries = 'pg_stat_statements'
password_encryption = 'scram-sha-256'
ssl = on
ssl_cert_file = '$pg_dir/server.crt'
ssl_key_file = '$pg_dir/server.key'
CONF
cat > "$pg_dir/data/pg_hba.conf" <<HBA
local all all peer
hostnossl tls_only all 127.0.0.1/32 reject
hostnossl all +tls_required 127.0.0.1/32 reject
host all all 127.0.0.1/32 scram-sha-256
hostnossl all all $PHONEBILL_TEST_POD_IP/32 reject
hostssl all all $PHONEBILL_TEST_POD_IP/32 scram-sha-256
HBA
as_pg "$PHONEBILL_TEST_PG_BIN/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/log" -w start >/dev/null
# Stops both servers (the second one is started below) and removes their directory.
stop_throwaway_pg() {
  for data in data plain; do
    as_pg "$PHONEBILL_TEST_PG_BIN/pg_ctl" -D "$pg_dir/$data" -m immediate stop >/dev/null 2>&1 || true
  done
  as_pg "$PHONEBILL_TEST_OLD_PG_BIN/pg_ctl" -D "$pg_dir/old" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$pg_dir"
}
trap stop_throwaway_pg EXIT
as_pg "$PHONEBILL_TEST_PG_BIN/psql" -h "$pg_dir" -p "$PHONEBILL_TEST_PG_PORT" -U postgres -d postgres \
  -q -c "CREATE DATABASE tls_only" -c "CREATE ROLE tls_required NOLOGIN" >/dev/null
echo "throwaway PostgreSQL $("$PHONEBILL_TEST_PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PHONEBILL_TEST_PG_PORT ($pg_dir)" >&2

# A second server with initdb's defaults and nothing of the profile (like a CI job's `postgres:16`
# service container): verify must warn, not fail, on its settings (docs/ci.md).
PHONEBILL_TEST_PLAIN_PG_PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
as_pg "$PHONEBILL_TEST_PG_BIN/initdb" -D "$pg_dir/plain" -U postgres --pwfile="$pg_dir/pwfile" \
  --auth-host=scram-sha-256 --auth-local=peer -E UTF8 --locale=C.UTF-8 >/dev/null
as_pg "$PHONEBILL_TEST_PG_BIN/pg_ctl" -D "$pg_dir/plain" -l "$pg_dir/plain.log" -w \
  -o "-p $PHONEBILL_TEST_PLAIN_PG_PORT -k $pg_dir -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
echo "throwaway PostgreSQL with default settings on 127.0.0.1:$PHONEBILL_TEST_PLAIN_PG_PORT" >&2

# A third: Debian's 15, initdb's defaults, an older server than the tools.
PHONEBILL_TEST_OLD_PG_PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
as_pg "$PHONEBILL_TEST_OLD_PG_BIN/initdb" -D "$pg_dir/old" -U postgres --pwfile="$pg_dir/pwfile" \
  --auth-host=scram-sha-256 --auth-local=peer -E UTF8 --locale=C.UTF-8 >/dev/null
as_pg "$PHONEBILL_TEST_OLD_PG_BIN/pg_ctl" -D "$pg_dir/old" -l "$pg_dir/old.log" -w \
  -o "-p $PHONEBILL_TEST_OLD_PG_PORT -k $pg_dir -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
echo "throwaway PostgreSQL $("$PHONEBILL_TEST_OLD_PG_BIN/postgres" --version | awk '{print $3}') (older, initdb's defaults) on 127.0.0.1:$PHONEBILL_TEST_OLD_PG_PORT" >&2

PHONEBILL_TEST_PG_CA="$pg_dir/ca.crt"
PHONEBILL_TEST_PG_OTHER_CA="$pg_dir/other-ca.crt"
export PHONEBILL_TEST_PG_MAJOR PHONEBILL_TEST_OLD_PG_BIN PHONEBILL_TEST_OLD_PG_PORT
export PHONEBILL_TEST_POD_IP PHONEBILL_TEST_PG_BIN PHONEBILL_TEST_PG_PORT PHONEBILL_TEST_PLAIN_PG_PORT PHONEBILL_TEST_PG_PASSWORD PHONEBILL_TEST_PG_CA PHONEBILL_TEST_PG_OTHER_CA
