#!/usr/bin/env bash
# A throw-away three-node MariaDB Galera cluster (multi-primary, synchronous
# replication) on loopback, for the tests in galera/.
#
#   scripts/galera.sh start     [BASE_DIR]  stop leftovers, wipe BASE_DIR, start three nodes, wait for Synced
#   scripts/galera.sh stop      [BASE_DIR]  stop every node (SIGTERM, then SIGKILL after 30 s); keeps the logs
#   scripts/galera.sh status    [BASE_DIR]  one line per node; exit 0 only when all three are Synced in a cluster of 3
#   scripts/galera.sh kill N    [BASE_DIR]  crash node N (SIGKILL), wait until the others form a primary component
#   scripts/galera.sh restart N [BASE_DIR]  (re)start node N, let it rejoin (IST or SST) and wait for Synced
#
# Node N listens on 127.0.0.1:$((3406+N)) (SQL: root with an empty password)
# and uses the Galera ports 45N7 (group), 45N8 (IST) and 45N9 (SST), so
# node 1 has 3407, 4567, 4568, 4569. BASE_DIR defaults to
# $VISITSESSION_GALERA_BASE, else ${TMPDIR:-/tmp}/visitsession-galera.
#
# The script installs nothing. It needs Debian's mariadb-server (mariadbd,
# mariadb-install-db, wsrep_sst_rsync), mariadb-client, galera-4 and rsync,
# and says which are missing. It never touches a MariaDB server it did not
# start (such as the one on port 3306): every node runs from its own
# --defaults-file under BASE_DIR, and processes are found by their pid file
# or by that option on their command line.
#
# Environment: GALERA_PROVIDER (path of libgalera_smm.so),
# GALERA_TIMEOUT (seconds to wait for a node, default 120).
set -euo pipefail

readonly NODES=(1 2 3)
readonly MARKER=.visitsession-galera
timeout=${GALERA_TIMEOUT:-120}

usage() {
	sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

die() {
	printf 'galera.sh: %s\n' "$*" >&2
	exit 1
}

say() { printf 'galera.sh: %s\n' "$*"; }

cmd=${1:-}
node=
case $cmd in
start | stop | status) base=${2:-} ;;
kill | restart)
	node=${2:-}
	[[ $node =~ ^[123]$ ]] || die "$cmd needs a node number 1, 2 or 3"
	base=${3:-}
	;;
*) usage ;;
esac
base=${base:-${VISITSESSION_GALERA_BASE:-${TMPDIR:-/tmp}/visitsession-galera}}
[[ $base == /* ]] || base=$PWD/$base
base=${base%/}
[[ -n $base && $base != / ]] || die "refusing BASE_DIR '/'"

sql_port() { echo $((3406 + $1)); }
gcomm_port() { echo $((4557 + 10 * $1)); }
conf() { echo "$base/n$1/my.cnf"; }
sock() { echo "$base/n$1/mysqld.sock"; }
errlog() { echo "$base/n$1/error.log"; }

# client runs the mariadb client on node N's socket, reading no option file.
client() {
	local n=$1
	shift
	mariadb --no-defaults -S "$(sock "$n")" -uroot -N -B "$@"
}

# status_var prints a global status variable of node N, or nothing.
status_var() {
	client "$1" -e "SHOW GLOBAL STATUS LIKE '$2'" 2>/dev/null | cut -f2 || true
}

find_bin() {
	local name=$1 dir
	if command -v "$name" >/dev/null 2>&1; then
		command -v "$name"
		return 0
	fi
	for dir in /usr/sbin /usr/bin /usr/local/sbin /usr/local/bin; do
		[[ -x $dir/$name ]] && {
			echo "$dir/$name"
			return 0
		}
	done
	return 1
}

provider=
mariadbd_bin=
check_prerequisites() {
	local missing=() pkgs=()
	mariadbd_bin=$(find_bin mariadbd) || { missing+=(mariadbd); pkgs+=(mariadb-server); }
	find_bin mariadb-install-db >/dev/null || { missing+=(mariadb-install-db); pkgs+=(mariadb-server); }
	find_bin wsrep_sst_rsync >/dev/null || { missing+=(wsrep_sst_rsync); pkgs+=(mariadb-server); }
	find_bin mariadb >/dev/null || { missing+=(mariadb); pkgs+=(mariadb-client); }
	find_bin rsync >/dev/null || { missing+=(rsync); pkgs+=(rsync); }
	provider=${GALERA_PROVIDER:-}
	if [[ -z $provider ]]; then
		for p in /usr/lib/galera/libgalera_smm.so /usr/lib/libgalera_smm.so /usr/lib64/galera-4/libgalera_smm.so /usr/lib64/galera/libgalera_smm.so; do
			[[ -f $p ]] && { provider=$p; break; }
		done
	fi
	[[ -n $provider && -f $provider ]] || { missing+=(libgalera_smm.so); pkgs+=(galera-4); }
	if ((${#missing[@]})); then
		die "missing ${missing[*]}; install with: apt-get update && apt-get install -y $(printf '%s\n' "${pkgs[@]}" | sort -u | tr '\n' ' ')"
	fi
	if ((EUID == 0)) && ! id mysql >/dev/null 2>&1; then
		die "running as root but there is no 'mysql' user to run mariadbd as (it comes with mariadb-server)"
	fi
}

# node_pid prints the pid of node N's mariadbd, if one runs: the process
# whose command line holds node N's --defaults-file.
node_pid() {
	local n=$1 pid f
	if [[ -f $base/n$n/mysqld.pid ]]; then
		pid=$(<"$base/n$n/mysqld.pid")
		if [[ $pid =~ ^[0-9]+$ ]] && is_node "$pid" "$n"; then
			echo "$pid"
			return 0
		fi
	fi
	# No pid file yet (starting) or a stale one: search the command lines.
	for f in $(grep -lasF -- "--defaults-file=$(conf "$n")" /proc/[0-9]*/cmdline 2>/dev/null); do
		pid=${f#/proc/}
		pid=${pid%/cmdline}
		if is_node "$pid" "$n"; then
			echo "$pid"
			return 0
		fi
	done
	return 0 # none: not an error (the script runs with errexit)
}

# is_node reports whether process PID is the mariadbd of node N.
is_node() {
	local pid=$1 n=$2 comm args
	comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
	[[ $comm == mariadbd || $comm == mysqld ]] || return 1
	args=$(tr '\0' '\n' 2>/dev/null <"/proc/$pid/cmdline") || return 1
	grep -qxF -- "--defaults-file=$(conf "$n")" <<<"$args"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

check_ports_free() {
	local n p busy=()
	for n in "${NODES[@]}"; do
		for p in "$(sql_port "$n")" "$(gcomm_port "$n")" $(($(gcomm_port "$n") + 1)) $(($(gcomm_port "$n") + 2)); do
			port_open "$p" && busy+=("$p")
		done
	done
	((${#busy[@]} == 0)) && return 0
	local who=
	command -v ss >/dev/null 2>&1 && who=$(ss -ltnp 2>/dev/null | grep -E ":($(
		IFS='|'
		echo "${busy[*]}"
	)) " || true)
	die "ports ${busy[*]} are in use by a process this script did not start${who:+:
$who}
stop it (a cluster this script started with another BASE_DIR stops with: $0 stop THAT_DIR) and try again"
}

# stop_node stops node N: SIGTERM, then SIGKILL after 30 s (a node that is
# still joining ignores SIGTERM until its state transfer ends).
stop_node() {
	local n=$1 pid
	pid=$(node_pid "$n")
	[[ -n $pid ]] || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 300); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	say "node $n (pid $pid) ignored SIGTERM for 30 s; killing it"
	kill -KILL "$pid" 2>/dev/null || true
	for _ in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
}

stop_all() {
	local n pids=()
	for n in "${NODES[@]}"; do
		stop_node "$n" &
		pids+=($!)
	done
	wait "${pids[@]}"
}

write_config() {
	local n=$1 d=$base/n$1 user=mysql
	((EUID == 0)) || user=$(id -un)
	mkdir -p "$d"
	cat >"$d/my.cnf" <<CNF
[mysqld]
datadir=$d/data
socket=$d/mysqld.sock
port=$(sql_port "$n")
bind-address=127.0.0.1
skip-name-resolve
pid-file=$d/mysqld.pid
log-error=$d/error.log
user=$user
max_connections=300
binlog_format=ROW
default_storage_engine=InnoDB
innodb_autoinc_lock_mode=2
innodb_buffer_pool_size=64M
innodb_log_file_size=32M
# A test cluster: durability comes from the other nodes, not from fsync.
innodb_flush_log_at_trx_commit=2
innodb_doublewrite=0
wsrep_on=ON
wsrep_provider=$provider
wsrep_cluster_name=visitsession
wsrep_cluster_address=gcomm://127.0.0.1:$(gcomm_port 1),127.0.0.1:$(gcomm_port 2),127.0.0.1:$(gcomm_port 3)
wsrep_node_address=127.0.0.1:$(gcomm_port "$n")
wsrep_node_name=n$n
wsrep_provider_options="base_port=$(gcomm_port "$n");gmcast.listen_addr=tcp://127.0.0.1:$(gcomm_port "$n");ist.recv_addr=127.0.0.1:$(($(gcomm_port "$n") + 1));gcache.size=64M"
wsrep_sst_method=rsync
wsrep_sst_receive_address=127.0.0.1:$(($(gcomm_port "$n") + 2))
wsrep_slave_threads=2
# What Galera cannot replicate fails loudly instead of diverging: tables
# without a primary key, and tables in engines other than InnoDB.
wsrep_mode=REQUIRED_PRIMARY_KEY,STRICT_REPLICATION
CNF
	((EUID != 0)) || chown -R mysql:mysql "$d"
}

# wait_synced waits until node N accepts SQL and is Synced, failing with
# the end of its error log when it dies or the timeout passes.
wait_synced() {
	local n=$1 pid state
	for _ in $(seq $((timeout * 4))); do
		pid=$(node_pid "$n")
		if [[ -z $pid ]]; then
			sleep 0.5 # the pid file may not be written yet
			pid=$(node_pid "$n")
			[[ -n $pid ]] || {
				tail -n 30 "$(errlog "$n")" >&2 2>/dev/null || true
				die "node $n exited while starting; the end of $(errlog "$n") is above"
			}
		fi
		state=$(status_var "$n" wsrep_local_state_comment)
		[[ $state == Synced ]] && return 0
		sleep 0.25
	done
	tail -n 30 "$(errlog "$n")" >&2 2>/dev/null || true
	die "node $n was not Synced after ${timeout}s (state '${state:-no answer}'); the end of $(errlog "$n") is above"
}

launch() {
	local n=$1
	shift
	: >"$(errlog "$n")"
	((EUID != 0)) || chown mysql:mysql "$(errlog "$n")"
	setsid "$mariadbd_bin" --defaults-file="$(conf "$n")" "$@" </dev/null >/dev/null 2>&1 &
	disown
}

start() {
	check_prerequisites
	local n
	# A start that fails stops the nodes it started; their logs stay.
	trap 'rc=$?; if ((rc != 0)); then say "start failed; stopping its nodes (logs in $base)"; stop_all; fi' EXIT
	for n in "${NODES[@]}"; do
		[[ -z $(node_pid "$n") ]] || {
			say "stopping the nodes left by an earlier run in $base"
			stop_all
			break
		}
	done
	check_ports_free
	if [[ -e $base ]]; then
		[[ -d $base ]] || die "$base exists and is not a directory"
		if [[ ! -e $base/$MARKER && -n $(ls -A "$base") ]]; then
			die "$base is not empty and was not made by this script; choose another BASE_DIR"
		fi
		rm -rf "$base"
	fi
	mkdir -p "$base"
	touch "$base/$MARKER"
	for n in "${NODES[@]}"; do write_config "$n"; done
	local start=$SECONDS
	if ! mariadb-install-db --defaults-file="$(conf 1)" --auth-root-authentication-method=normal \
		--skip-test-db >"$base/install-db.log" 2>&1; then
		cat "$base/install-db.log" >&2
		die "mariadb-install-db failed"
	fi
	# Node 1 founds the cluster's history and the accounts, then stops
	# cleanly, which stores its Galera position in InnoDB. Nodes 2 and 3
	# start from copies of its data directory, so they join from that
	# position and need only an incremental transfer (IST) of the few
	# membership events since, not a full copy.
	launch 1 --wsrep-new-cluster
	wait_synced 1
	client 1 -e "CREATE USER IF NOT EXISTS root@'127.0.0.1' IDENTIFIED BY '';
		GRANT ALL ON *.* TO root@'127.0.0.1' WITH GRANT OPTION;
		CREATE DATABASE IF NOT EXISTS test;" || die "granting root@127.0.0.1 on node 1 failed"
	stop_node 1
	for n in 2 3; do
		rm -rf "$base/n$n/data"
		cp -a "$base/n1/data" "$base/n$n/data"
		rm -f "$base/n$n/data/galera.cache" "$base/n$n/data/gvwstate.dat"
		sed -i 's/^safe_to_bootstrap: 1/safe_to_bootstrap: 0/' "$base/n$n/data/grastate.dat"
	done
	launch 1 --wsrep-new-cluster
	wait_synced 1
	launch 2
	launch 3
	wait_synced 2
	wait_synced 3
	status || die "the cluster did not form (see the error.log files in $base)"
	say "cluster of 3 up in $((SECONDS - start))s; base $base"
}

stop() {
	stop_all
	[[ ! -e $base/$MARKER ]] || rm -rf "$base"/n*/data "$base"/n*/mysqld.sock
	say "stopped; logs in $base"
}

# status prints one line per node and succeeds when all three are Synced
# members of one primary component of size 3.
status() {
	local n ok=0 size state primary
	for n in "${NODES[@]}"; do
		if [[ -z $(node_pid "$n") ]]; then
			printf 'n%s 127.0.0.1:%s: not running\n' "$n" "$(sql_port "$n")"
			ok=1
			continue
		fi
		size=$(status_var "$n" wsrep_cluster_size)
		state=$(status_var "$n" wsrep_local_state_comment)
		primary=$(status_var "$n" wsrep_cluster_status)
		printf 'n%s 127.0.0.1:%s: %s, %s, cluster size %s\n' "$n" "$(sql_port "$n")" \
			"${state:-no answer}" "${primary:-?}" "${size:-?}"
		[[ $state == Synced && $size == 3 && $primary == Primary ]] || ok=1
	done
	return $ok
}

kill_node() {
	local n=$1 pid m alive=() size
	pid=$(node_pid "$n")
	[[ -n $pid ]] || die "node $n is not running"
	kill -KILL "$pid"
	for _ in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	for m in "${NODES[@]}"; do [[ $m == "$n" || -z $(node_pid "$m") ]] || alive+=("$m"); done
	((${#alive[@]})) || {
		say "killed node $n; no node is left"
		return 0
	}
	for _ in $(seq $((timeout * 4))); do
		size=$(status_var "${alive[0]}" wsrep_cluster_size)
		if [[ $size == "${#alive[@]}" && $(status_var "${alive[0]}" wsrep_cluster_status) == Primary ]]; then
			say "killed node $n (pid $pid); nodes ${alive[*]} form a primary component of $size"
			return 0
		fi
		sleep 0.25
	done
	die "killed node $n, but nodes ${alive[*]} did not form a primary component within ${timeout}s"
}

# recover_position prints node N's last committed position (uuid:seqno)
# as InnoDB recorded it, from a short run of mariadbd --wsrep-recover, or
# nothing. After a crash, grastate.dat no longer holds it (seqno -1).
recover_position() {
	local n=$1 log=$base/n$1/recover.log
	: >"$log"
	((EUID != 0)) || chown mysql:mysql "$log"
	"$mariadbd_bin" --defaults-file="$(conf "$n")" --wsrep-recover --log-error="$log" \
		</dev/null >/dev/null 2>&1 || true
	{ grep -a 'WSREP: Recovered position:' "$log" || true; } | tail -n 1 | sed 's/.*Recovered position:[[:space:]]*//'
}

restart_node() {
	local n=$1 m running=0 pos=
	check_prerequisites
	[[ -f $(conf "$n") ]] || die "no node $n in $base; run '$0 start' first"
	for m in "${NODES[@]}"; do [[ $m == "$n" || -z $(node_pid "$m") ]] || running=1; done
	((running)) || die "no other node is running for node $n to join; run '$0 start'"
	stop_node "$n"
	# Started from its last committed position, the node catches up by
	# incremental state transfer (IST) from a donor's write-set cache;
	# without a position it needs a full copy (SST), during which the
	# rsync donor blocks its own writes.
	if grep -q '^seqno:[[:space:]]*-1' "$base/n$n/data/grastate.dat" 2>/dev/null; then
		pos=$(recover_position "$n")
		[[ -n $pos ]] || say "node $n: no position recovered (see $base/n$n/recover.log); it will rejoin by full state transfer"
	fi
	launch "$n" ${pos:+--wsrep-start-position="$pos"}
	wait_synced "$n"
	say "node $n rejoined${pos:+ from position $pos}: $(status_var "$n" wsrep_local_state_comment), cluster size $(status_var "$n" wsrep_cluster_size)"
}

case $cmd in
start) start ;;
stop) stop ;;
status) status ;;
kill) kill_node "$node" ;;
restart) restart_node "$node" ;;
esac
