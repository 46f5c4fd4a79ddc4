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
# - PostgreSQL from Debian's packages (apt-get, when missing), started as throwaway servers for this
#   run only (scripts/throwaway-pg.sh: one with TLS and the dev profile's settings, one with
#   initdb's defaults), stopped at exit.
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

# The dependency policy (licenses, bans, sources), offline.
if [ -n "$deny_pid" ] && ! wait "$deny_pid"; then
  cat target/tools/cargo-deny.log >&2
  echo "cargo-deny did not install" >&2
  exit 1
fi
if "$deny_root/bin/cargo-deny" --offline check licenses bans sources >target/tools/cargo-deny-check.log 2>&1; then
  echo "cargo deny (deny.toml): $(tail -1 target/tools/cargo-deny-check.log)" >&2
else
  cat target/tools/cargo-deny-check.log >&2
  echo "cargo deny: the dependency policy (deny.toml) is broken" >&2
  status=1
fi
exit $status
