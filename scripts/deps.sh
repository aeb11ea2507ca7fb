#!/usr/bin/env bash
# deps.sh installs the Debian packages that `make test` needs and a fresh machine may lack:
# PostgreSQL's server binaries (the project-local cluster), Chromium (the browser tests) and
# Python's Flask and psycopg2 (the Flask example's end-to-end test); with the argument
# `bench`, PostgreSQL and wrk only (`make bench` loads the API with wrk). It installs only
# what is missing, in one apt-get run, and only as root on a machine with apt-get; elsewhere
# it says what to install and leaves the tests to fail with their own one-line hints.
set -euo pipefail

missing=()
if [[ -z ${DATABASE_URL:-} ]] && [[ -z "$(ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null)" ]] && ! command -v initdb >/dev/null 2>&1; then
	missing+=(postgresql)
fi
if [[ ${1:-} == bench ]]; then
	if ! command -v wrk >/dev/null 2>&1; then
		missing+=(wrk)
	fi
else
	if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
		missing+=(chromium)
	fi
	# Debian's interpreter, not one earlier on PATH: the example's test runs /usr/bin/python3.
	if ! /usr/bin/python3 -c 'import flask' >/dev/null 2>&1; then
		missing+=(python3-flask)
	fi
	if ! /usr/bin/python3 -c 'import psycopg2' >/dev/null 2>&1; then
		missing+=(python3-psycopg2)
	fi
fi

if [[ ${#missing[@]} -eq 0 ]]; then
	exit 0
fi
if [[ $EUID -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
	echo "deps.sh: missing ${missing[*]}: install them (Debian: sudo apt-get install ${missing[*]})" >&2
	exit 0
fi
echo "deps.sh: installing ${missing[*]} (apt-get)"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
