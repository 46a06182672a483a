#!/usr/bin/env bash
# Install the Debian packages the project needs, only those missing, and say which and why.
# Run by `make install` and `make services` (so by `make run` and `make test`): a bare Debian 12 with
# git, make and python3 gets everything else from here. Each need is checked by what it provides
# (a command, a module, a file), so what came from elsewhere (Node.js from NodeSource) counts.
set -euo pipefail

PG=15  # scripts/services.sh and scripts/replica.sh run the newest PostgreSQL they find
# package | present when this succeeds | what needs it
NEEDS=(
  "python3-venv|python3 -c 'import ensurepip, venv'|python3 -m venv (make install)"
  "postgresql-$PG|test -x /usr/lib/postgresql/$PG/bin/postgres|the primary and its streaming replica (scripts/services.sh)"
  "postgresql-contrib|test -e /usr/share/postgresql/$PG/extension/pg_stat_statements.control|pg_trgm and pg_stat_statements"
  "rabbitmq-server|command -v rabbitmq-server|the bus, with its plugins (consistent hash, management, prometheus)"
  "nodejs|command -v node|the AsyncAPI parser the tests run (tools/asyncapi)"
  "npm|command -v npm|npm ci for that parser (make install)"
  "openssl|command -v openssl|the throwaway certificates of tests/bus/test_tls.py"
  "curl|command -v curl|the README's Quickstart and scripts/services.sh"
  "docker-compose|command -v docker-compose|tests/test_compose.py checks docker-compose.yml with it"
  "wrk|command -v wrk|the load generator of make bench"
  "valgrind|command -v callgrind_control|instructions per request in make bench (callgrind)"
)

missing=()
for need in "${NEEDS[@]}"; do
  IFS='|' read -r pkg check why <<<"$need"
  if ! bash -c "$check" >/dev/null 2>&1; then
    missing+=("$pkg")
    echo "apt-deps: missing $pkg: $why"
  fi
done

if ((${#missing[@]} == 0)); then
  echo "apt-deps: all ${#NEEDS[@]} needs present"
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "apt-deps: need root to install: ${missing[*]} (or install them by hand)" >&2
  exit 1
fi

echo "apt-deps: installing ${missing[*]} (apt-get, a few minutes on a bare machine)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "apt-deps: installed ${missing[*]}"
