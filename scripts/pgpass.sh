#!/usr/bin/env bash
# Print the password of a local PostgreSQL role as the caller's ~/.pgpass (or $PGPASSFILE) holds it,
# making one up and writing it there first (for 127.0.0.1 and localhost, any port and database) when
# it holds none. libpq (psql, pg_dump, pg_basebackup) and asyncpg read that file by themselves, so the
# project's URLs carry no password, and the file is the caller's alone (mode 0600).
#   scripts/pgpass.sh ROLE
set -euo pipefail
role=${1:?usage: pgpass.sh ROLE}
[[ $role =~ ^[a-z_][a-z0-9_]*$ ]] || { echo "pgpass.sh: not a plain role name: $role" >&2; exit 2; }
file=${PGPASSFILE:-$HOME/.pgpass}

touch "$file"
chmod 600 "$file"
exec 9<"$file"
flock 9  # two runs at once agree on one password
password=$(awk -F: -v role="$role" '$1 == "127.0.0.1" && $4 == role { print $5; exit }' "$file")
if [[ -z $password ]]; then
  password=$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')  # hex: nothing to escape in the file or a URL
  printf '%s:*:*:%s:%s\n' 127.0.0.1 "$role" "$password" localhost "$role" "$password" >>"$file"
  echo "pgpass.sh: a password for the PostgreSQL role $role is now in $file" >&2
fi
echo "$password"
