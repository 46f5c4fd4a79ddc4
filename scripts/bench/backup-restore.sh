#!/usr/bin/env bash
# Backup and restore through phonebill-db against plain pg_dump -Fc / pg_restore, on the same
# generated data in the same run, with the tool's peak memory (benches/backup_restore.rs).
#
#   bash scripts/bench/backup-restore.sh                      # BENCH_USERS=300000: ~2.7M rows
#   BENCH_USERS=30000 bash scripts/bench/backup-restore.sh    # a quick look
#
# Starts the throwaway PostgreSQL like the test suite; prints Markdown tables for docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! [ -x /usr/bin/time ]; then
  echo "installing GNU time (peak memory)" >&2
  apt-get update -qq && apt-get install -y -qq time >/dev/null
fi
source scripts/throwaway-pg.sh
cargo bench --bench backup_restore
