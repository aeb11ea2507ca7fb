#!/usr/bin/env bash
# with-db.sh runs its arguments with DATABASE_URL exported: the caller's when it is set,
# else that of the project-local cluster, which it starts first (scripts/db.sh prints
# which URL it uses). It is the Makefile's one place for "which database".
#
#   scripts/with-db.sh go test ./...
set -euo pipefail

if [[ $# -eq 0 ]]; then
	echo "usage: scripts/with-db.sh command [args...]" >&2
	exit 2
fi

if [[ -z ${DATABASE_URL:-} ]]; then
	db="$(dirname -- "${BASH_SOURCE[0]}")/db.sh"
	"$db" start
	DATABASE_URL="$("$db" url)"
	export DATABASE_URL
fi

exec "$@"
