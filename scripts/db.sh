#!/usr/bin/env bash
# db.sh runs a project-local, throwaway PostgreSQL cluster for development and tests.
#
#   scripts/db.sh start    initialise (first time) and start the cluster; print the URL it uses
#   scripts/db.sh stop     stop it (fine when not running)
#   scripts/db.sh url      print only the connection URL
#   scripts/db.sh status   say whether it runs (exit 0) or not (exit 3, as pg_ctl does)
#
# The cluster lives in .pgdata/ (ignored by git): data/ is the cluster, port remembers the
# port, postgres.log is the server log. It uses the machine's own server binaries (newest
# /usr/lib/postgresql/*/bin, else pg_config --bindir, else PATH), listens only on 127.0.0.1
# at a port derived from the checkout's path in 54330-54929 (never 5432, and two checkouts
# do not collide), trusts local connections and trades durability for speed (fsync=off).
#
# Postgres refuses to run as root: as root, the cluster belongs to the postgres user and
# its commands run through runuser. When that user cannot reach the checkout (a clone under
# /root, say), the cluster lives in /tmp/handoff-pg-<hash> and .pgdata is a symlink to it.
set -euo pipefail

readonly PORT_MIN=54330
readonly PORT_COUNT=600
readonly DB_NAME=handoff
readonly DB_USER=postgres

# The caller's libpq settings (PGHOST, PGSSLMODE, ...) must not steer our own psql calls.
for var in $(compgen -e); do
	if [[ $var == PG* ]]; then
		unset "$var"
	fi
done

ROOT="$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
HASH="$(printf '%s' "$ROOT" | sha256sum | cut -c1-8)"
LINK="$ROOT/.pgdata"
TMP_BASE="/tmp/handoff-pg-$HASH"
SOCK_DIR="/tmp/handoff-pg-$HASH.sock"

die() {
	printf 'db.sh: %s\n' "$*" >&2
	exit 1
}

# as_owner runs a command as the cluster's owner: postgres when we are root, else ourselves.
# It runs from / so that a server process never holds an unreachable working directory.
as_owner() {
	if [[ $EUID -eq 0 ]]; then
		(cd / && runuser -u postgres -- "$@")
	else
		(cd / && "$@")
	fi
}

# base_dir prints the real directory that holds the cluster, without creating anything.
base_dir() {
	if [[ -L $LINK ]]; then
		readlink -- "$LINK"
	else
		printf '%s\n' "$LINK"
	fi
}

BASE="$(base_dir)"
DATA="$BASE/data"

# find_bindir sets BIN to a directory holding initdb, pg_ctl and postgres, or exits with
# the one line saying what to install. An existing cluster prefers its own major version.
find_bindir() {
	local want="" dir
	if [[ -r $DATA/PG_VERSION ]]; then
		want="$(<"$DATA/PG_VERSION")"
		if [[ -x /usr/lib/postgresql/$want/bin/pg_ctl ]]; then
			BIN="/usr/lib/postgresql/$want/bin"
			return
		fi
	fi
	BIN=""
	# Newest first; a client-only version (postgresql-client) has no initdb and is passed over.
	for dir in $(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -rV); do
		if [[ -x $dir/initdb && -x $dir/pg_ctl ]]; then
			BIN="$dir"
			break
		fi
	done
	if [[ -z $BIN ]]; then
		if command -v pg_config >/dev/null 2>&1 && dir="$(pg_config --bindir 2>/dev/null)" && [[ -x $dir/initdb && -x $dir/pg_ctl ]]; then
			BIN="$dir"
		elif command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
			BIN="$(dirname -- "$(command -v initdb)")"
		fi
	fi
	if [[ -z $BIN ]]; then
		echo "PostgreSQL server binaries not found: install them (Debian: apt-get install postgresql) or set DATABASE_URL" >&2
		exit 1
	fi
	if [[ -n $want ]]; then
		local have
		have="$("$BIN/pg_ctl" --version | sed -E 's/.* ([0-9]+).*/\1/')"
		if [[ $have != "$want" ]]; then
			die "the cluster in $LINK was made by PostgreSQL $want but only PostgreSQL $have is installed: stop it and remove $LINK to start afresh"
		fi
	fi
}

# check_owner makes sure that, as root, there is a postgres user to own the cluster.
check_owner() {
	if [[ $EUID -eq 0 ]] && ! id -u postgres >/dev/null 2>&1; then
		die "Postgres will not run as root and there is no postgres user to run it: create one (useradd --system postgres) or set DATABASE_URL"
	fi
}

# prepare creates the cluster's directories (choosing /tmp when the checkout is out of the
# postgres user's reach) and hands them to the cluster's owner.
prepare() {
	if [[ -L $LINK && ! -d $BASE ]]; then
		# /tmp was cleared under the symlink: start a new cluster behind it.
		mkdir -p -- "$BASE"
	elif [[ ! -e $LINK ]]; then
		if [[ $EUID -eq 0 ]] && ! runuser -u postgres -- test -x "$ROOT" 2>/dev/null; then
			mkdir -p -- "$TMP_BASE"
			ln -sfn -- "$TMP_BASE" "$LINK"
		else
			mkdir -p -- "$LINK"
		fi
		BASE="$(base_dir)"
		DATA="$BASE/data"
	fi
	mkdir -p -- "$SOCK_DIR"
	chmod 0700 -- "$BASE"
	if [[ $EUID -eq 0 ]]; then
		chown postgres: -- "$BASE" "$SOCK_DIR"
	fi
}

is_running() {
	[[ -f $DATA/PG_VERSION ]] && as_owner "$BIN/pg_ctl" status -D "$DATA" >/dev/null 2>&1
}

# current_port prints the port of the running server, else the remembered one, else the
# one derived from the checkout's path.
current_port() {
	local port=""
	if [[ -r $DATA/postmaster.pid ]]; then
		port="$(sed -n 4p -- "$DATA/postmaster.pid" 2>/dev/null || true)"
	fi
	if [[ ! $port =~ ^[0-9]+$ && -r $BASE/port ]]; then
		port="$(<"$BASE/port")"
	fi
	if [[ ! $port =~ ^[0-9]+$ ]]; then
		port=$((PORT_MIN + 16#$HASH % PORT_COUNT))
	fi
	printf '%s\n' "$port"
}

url() {
	printf 'postgres://%s@127.0.0.1:%s/%s?sslmode=disable\n' "$DB_USER" "$(current_port)" "$DB_NAME"
}

port_busy() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# free_port prints the remembered or derived port, or the next one in the range that
# nothing listens on.
free_port() {
	local port i
	port="$(current_port)"
	for ((i = 0; i < PORT_COUNT; i++)); do
		if ! port_busy "$port"; then
			printf '%s\n' "$port"
			return
		fi
		port=$((PORT_MIN + (port + 1 - PORT_MIN) % PORT_COUNT))
	done
	die "no free port in $PORT_MIN-$((PORT_MIN + PORT_COUNT - 1))"
}

init_cluster() {
	# A half-made data directory (initdb interrupted) is thrown away and made again.
	if [[ -e $DATA ]]; then
		rm -rf -- "$DATA"
	fi
	as_owner "$BIN/initdb" -D "$DATA" -U "$DB_USER" --auth=trust --encoding=UTF8 --locale=C >"$BASE/initdb.log" 2>&1 ||
		die "initdb failed; see $BASE/initdb.log"
	cat >>"$DATA/postgresql.conf" <<-CONF

		# Added by scripts/db.sh: a throwaway cluster for development and tests. The port and
		# the socket directory are given on the command line at each start.
		cluster_name = 'handoff-$HASH'
		listen_addresses = '127.0.0.1'
		fsync = off
		full_page_writes = off
		max_connections = 400
		shared_buffers = 256MB
	CONF
}

wait_ready() {
	local port=$1 i
	for ((i = 0; i < 120; i++)); do
		if "$BIN/pg_isready" -q -h 127.0.0.1 -p "$port" -U "$DB_USER" -d postgres; then
			return
		fi
		sleep 0.5
	done
	die "Postgres on port $port is not ready after 60s; see $BASE/postgres.log"
}

psql_admin() {
	"$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$(current_port)" -U "$DB_USER" -d postgres "$@"
}

cmd_start() {
	find_bindir
	check_owner
	prepare
	# One start or stop at a time (make test in two shells); the server must not inherit fd 9.
	exec 9>>"$BASE/lock"
	flock 9
	if [[ ! -f $DATA/PG_VERSION ]]; then
		init_cluster
	fi
	local port
	if is_running; then
		port="$(current_port)"
	else
		port="$(free_port)"
		printf '%s\n' "$port" >"$BASE/port"
		as_owner "$BIN/pg_ctl" start -D "$DATA" -l "$BASE/postgres.log" -w -t 60 -s \
			-o "-p $port -k $SOCK_DIR" >/dev/null 9>&- ||
			die "Postgres did not start; see $BASE/postgres.log"
	fi
	wait_ready "$port"
	if [[ -z "$(psql_admin -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'")" ]]; then
		psql_admin -c "CREATE DATABASE $DB_NAME"
	fi
	local where=.pgdata
	if [[ -L $LINK ]]; then
		where=".pgdata -> $BASE"
	fi
	echo "Postgres (scripts/db.sh, data in $where): $(url)"
}

cmd_stop() {
	if [[ ! -f $DATA/PG_VERSION ]]; then
		return
	fi
	find_bindir
	exec 9>>"$BASE/lock"
	flock 9
	if is_running; then
		as_owner "$BIN/pg_ctl" stop -D "$DATA" -m fast -w -t 60 -s
		echo "Postgres (scripts/db.sh) stopped"
	fi
}

cmd_status() {
	if [[ -f $DATA/PG_VERSION ]]; then
		find_bindir
		if is_running; then
			echo "running: $(url)"
			return 0
		fi
	fi
	echo "stopped (scripts/db.sh start would use $(url))"
	return 3
}

case "${1:-}" in
start) cmd_start ;;
stop) cmd_stop ;;
url) url ;;
status) cmd_status ;;
*)
	echo "usage: scripts/db.sh start|stop|url|status" >&2
	exit 2
	;;
esac
