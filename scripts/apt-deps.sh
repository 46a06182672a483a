#!/usr/bin/env bash
# Install the Debian packages the project needs, only when they are missing.
set -euo pipefail

# command -> Debian package. postgresql-contrib extras ship with the server on Debian 12.
declare -A WANTED=(
  [wrk]=wrk  # load generator of `make bench`
  [docker-compose]=docker-compose
  [openssl]=openssl  # tests/bus/test_tls.py issues its throwaway certificates with it
  [curl]=curl  # the README's Quickstart and scripts/services.sh call it
)

missing=()
for cmd in "${!WANTED[@]}"; do
  pkg=${WANTED[$cmd]}
  if command -v "$cmd" >/dev/null 2>&1 || dpkg -s "$pkg" >/dev/null 2>&1; then
    echo "apt-deps: $pkg already present"
  else
    missing+=("$pkg")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "apt-deps: nothing to install"
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "apt-deps: need root to install: ${missing[*]}" >&2
  exit 1
fi

echo "apt-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "apt-deps: done"
