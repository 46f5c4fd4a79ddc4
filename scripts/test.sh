#!/usr/bin/env bash
# The whole test suite, on a fresh machine of this kind (Rust with cargo-nextest, Python 3):
# installs what the tests need, then runs every test of the workspace.
#
#   bash scripts/test.sh            # everything
#   bash scripts/test.sh install::  # a filter, passed to cargo nextest
#
# What it installs, and where:
# - kubernetes-validate (PyPI), with the Kubernetes JSON schemas, into target/tools/venv:
#   the render tests validate every manifest strictly against Kubernetes 1.33.
# - PostgreSQL from Debian's packages (apt-get, when missing), started as a throwaway server for this
#   run only (scripts/throwaway-pg.sh: TLS on, the dev profile's settings), stopped at exit.
# The Kubernetes side of the tests is the fake API server in fake-kube/ (no cluster needed); it
# bridges pod port-forward to the throwaway server.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/tools/venv
if ! "$venv/bin/kubernetes-validate" --version >/dev/null 2>&1; then
  echo "installing kubernetes-validate into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'kubernetes-validate==1.37.0'
fi
export KUBERNETES_VALIDATE="$PWD/$venv/bin/kubernetes-validate"

source scripts/throwaway-pg.sh

cargo nextest run --workspace --no-fail-fast "$@"

