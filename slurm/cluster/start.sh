#!/usr/bin/env bash
# Start a real single-node SLURM cluster on loopback for tests and CI.
#
# Usage: bash slurm/cluster/start.sh [STATE_DIR]      (default /tmp/clapsweep-slurm)
#
# As root: installs the Debian packages when missing, writes slurm.conf and slurmdbd.conf into
# STATE_DIR/etc, then starts munged, MariaDB (unix socket only), slurmdbd, slurmctld and slurmd
# by hand (no systemd), registers the cluster and an account in accounting, waits until the
# node is idle and checks that every daemon listens on 127.0.0.1 only. The PIDs it started are
# kept in STATE_DIR/run/started.pids; stop.sh stops exactly those.
#
# Idempotent: with the cluster already running it changes nothing and succeeds.
# On success stdout is
#     export SLURM_CONF=STATE_DIR/etc/slurm.conf
#     # slurm-cluster: started in N s        (or: # slurm-cluster: already running)
# so `eval "$(bash slurm/cluster/start.sh)"` works. On failure it exits 1 and the last line
# on stderr is "start.sh: FAILED: <reason>".
#
# Environment: CLAPSWEEP_SLURM_INSTALL=0 forbids apt-get (fail instead of installing);
# SLURMCTLD_PORT / SLURMD_PORT / SLURMDBD_PORT change the ports (defaults 6817 / 6818 / 6819).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STATE=$(realpath -m "${1:-/tmp/clapsweep-slurm}")
# Always set: without it, slurm clients look the configuration up by DNS (a query off the machine).
export SLURM_CONF=$STATE/etc/slurm.conf
MUNGE_SOCKET=$STATE/munge/run/munge.socket.2
MYSQL_SOCKET=$STATE/mysql/mysqld.sock
PIDS_FILE=$STATE/run/started.pids
CLUSTER=clapsweep
ACCOUNT=clapsweep
CTLD_PORT=${SLURMCTLD_PORT:-6817}
SLURMD_PORT=${SLURMD_PORT:-6818}
DBD_PORT=${SLURMDBD_PORT:-6819}
SRUN_PORTS=60001-60100
now_ms() { echo $(($(date +%s%N) / 1000000)); }
T0=$(now_ms)
STARTED_ANY=0
LAST_NAME=
LAST_PID=

# elapsed START_MS: seconds since START_MS, one decimal.
elapsed() {
	local ms=$(($(now_ms) - $1))
	printf '%d.%d' $((ms / 1000)) $((ms % 1000 / 100))
}
log() { echo "[slurm-cluster +$(elapsed "$T0")s] $*" >&2; }

fail() {
	# Stop whatever this run started so a failed start leaves nothing behind.
	# (stop.sh runs under our lock: CLAPSWEEP_SLURM_LOCKED tells it not to wait for it.)
	if [[ $STARTED_ANY == 1 ]]; then
		CLAPSWEEP_SLURM_LOCKED=1 bash "$HERE/stop.sh" "$STATE" >&2 || true
	fi
	echo "start.sh: FAILED: $*" >&2
	exit 1
}

# wait_for SECONDS DESCRIPTION COMMAND...: poll COMMAND every 0.1 s until it succeeds; fail
# at once when the daemon launched last has died.
wait_for() {
	local limit=$1 what=$2
	shift 2
	local deadline=$(($(now_ms) + limit * 1000))
	until "$@" >/dev/null 2>&1; do
		if [[ -n $LAST_PID ]] && ! pid_alive "$LAST_PID"; then
			fail "$LAST_NAME exited while starting (see $STATE/log/$LAST_NAME.out and .log)"
		fi
		if (($(now_ms) > deadline)); then
			fail "$what not ready after ${limit} s (logs in $STATE/log)"
		fi
		sleep 0.1
	done
}

pid_alive() { [[ -d /proc/$1 ]] && [[ $(cat "/proc/$1/stat" 2>/dev/null | awk '{print $3}') != Z ]]; }

# all_running: true when every PID in started.pids is alive and slurmctld answers.
all_running() {
	[[ -s $PIDS_FILE ]] || return 1
	local name pid
	while read -r name pid; do
		pid_alive "$pid" || return 1
	done <"$PIDS_FILE"
	[[ $(wc -l <"$PIDS_FILE") == 5 ]] && scontrol ping 2>/dev/null | grep -q UP
}

node_idle() { [[ $(sinfo -h -n localhost -o %T 2>/dev/null) == idle ]]; }

# launch NAME COMMAND...: start a daemon in the foreground of its own session, detached from
# our stdio (so a caller that captures our output does not wait on it), and record its PID.
launch() {
	local name=$1
	shift
	# 9>&-: the daemon must not inherit (and so keep) the state dir lock.
	setsid "$@" </dev/null >>"$STATE/log/$name.out" 2>&1 9>&- &
	local pid=$!
	echo "$name $pid" >>"$PIDS_FILE"
	STARTED_ANY=1
	LAST_NAME=$name
	LAST_PID=$pid
}

ensure_root() {
	[[ $(id -u) == 0 ]] || fail "needs root (daemons run as root and packages come from apt-get)"
}

ensure_packages() {
	local missing=0 bin
	for bin in slurmctld slurmd slurmdbd sbatch sacct sacctmgr sinfo munged mungekey mariadbd \
		mariadb-install-db mariadb-admin ss; do
		command -v "$bin" >/dev/null || missing=1
	done
	[[ $missing == 0 ]] && return 0
	[[ ${CLAPSWEEP_SLURM_INSTALL:-1} != 0 ]] || fail "SLURM packages missing and CLAPSWEEP_SLURM_INSTALL=0"
	command -v apt-get >/dev/null || fail "SLURM packages missing and no apt-get on this machine"
	log "installing slurmctld slurmd slurm-client munge slurmdbd mariadb-server (apt-get)"
	local t
	t=$(now_ms)
	mkdir -p "$STATE/log"
	{
		apt-get update &&
			DEBIAN_FRONTEND=noninteractive apt-get install -y slurmctld slurmd slurm-client \
				munge slurmdbd mariadb-server iproute2
	} >"$STATE/log/apt.log" 2>&1 || fail "apt-get install failed (see $STATE/log/apt.log)"
	log "packages installed in $(elapsed "$t") s"
}

# The daemons bind to what the hostname resolves to: make that loopback before starting.
ensure_loopback_hostname() {
	local host addr
	host=$(hostname)
	addr=$(getent hosts "$host" | awk '{print $1; exit}' || true)
	if [[ $addr != 127.* ]]; then
		log "/etc/hosts: mapping $host to 127.0.0.1 (it resolved to '${addr:-nothing}')"
		# Prepend, so this line wins over any later one for the same name. Rewrite in place
		# (no sed -i, which renames): in containers /etc/hosts is a bind mount.
		local hosts
		hosts=$(cat /etc/hosts)
		printf '127.0.0.1 %s  # added by clapsweep slurm/cluster/start.sh\n%s\n' "$host" "$hosts" \
			>/etc/hosts || fail "cannot write /etc/hosts"
		addr=$(getent hosts "$host" | awk '{print $1; exit}' || true)
		[[ $addr == 127.* ]] || fail "hostname $host resolves to '$addr', not 127.x"
	fi
}

ensure_ports_free() {
	local port
	for port in "$CTLD_PORT" "$SLURMD_PORT" "$DBD_PORT"; do
		if ss -ltnH "sport = :$port" | grep -q .; then
			fail "TCP port $port already in use (another SLURM cluster running? stop it first)"
		fi
	done
}

write_configs() {
	local cpus mem_mb host
	cpus=$(nproc)
	mem_mb=$(awk '/^MemTotal:/ {printf "%d", $2 / 1024 * 0.95}' /proc/meminfo)
	host=$(hostname -s)
	mkdir -p "$STATE"/{etc,run,log,spool/ctld,spool/d,munge/run,mysql}
	local subst=(-e "s|@STATE@|$STATE|g" -e "s|@CLUSTER@|$CLUSTER|g" -e "s|@HOST@|$host|g"
		-e "s|@CTLD_PORT@|$CTLD_PORT|g" -e "s|@SLURMD_PORT@|$SLURMD_PORT|g"
		-e "s|@DBD_PORT@|$DBD_PORT|g" -e "s|@SRUN_PORTS@|$SRUN_PORTS|g"
		-e "s|@MUNGE_SOCKET@|$MUNGE_SOCKET|g" -e "s|@CPUS@|$cpus|g" -e "s|@MEM_MB@|$mem_mb|g")
	sed "${subst[@]}" "$HERE/slurm.conf.in" >"$STATE/etc/slurm.conf"
	sed "${subst[@]}" "$HERE/slurmdbd.conf.in" >"$STATE/etc/slurmdbd.conf"
	# slurmdbd refuses a config readable by others (it may hold a password).
	chmod 600 "$STATE/etc/slurmdbd.conf"
	chmod 644 "$STATE/etc/slurm.conf"
}

start_munge() {
	local dir=$STATE/munge
	# munged as root refuses a key owned by another user, and a group/world-writable socket dir.
	chmod 700 "$dir"
	chmod 755 "$dir/run"
	chmod 755 "$STATE"
	if [[ ! -s $dir/munge.key ]]; then
		mungekey --create --keyfile="$dir/munge.key" >/dev/null 2>&1 ||
			dd if=/dev/urandom of="$dir/munge.key" bs=1024 count=1 2>/dev/null
	fi
	chown root:root "$dir/munge.key"
	chmod 400 "$dir/munge.key"
	rm -f "$MUNGE_SOCKET" "$MUNGE_SOCKET.lock"
	launch munged munged --foreground --force --socket="$MUNGE_SOCKET" \
		--key-file="$dir/munge.key" --pid-file="$dir/run/munged.pid" \
		--log-file="$STATE/log/munged.log" --seed-file="$dir/munged.seed"
	wait_for 10 munged bash -c "munge -n -S '$MUNGE_SOCKET' | unmunge -S '$MUNGE_SOCKET'"
	log "munged up"
}

start_mariadb() {
	local data=$STATE/mysql/data
	if [[ ! -d $data/mysql ]]; then
		mariadb-install-db --no-defaults --datadir="$data" --user=root \
			--auth-root-authentication-method=socket --skip-test-db \
			>"$STATE/log/mariadb-install.log" 2>&1 ||
			fail "mariadb-install-db failed (see $STATE/log/mariadb-install.log)"
		log "MariaDB data dir initialised"
	fi
	rm -f "$MYSQL_SOCKET"
	# --skip-networking: no TCP at all, slurmdbd connects through the unix socket.
	launch mariadbd mariadbd --no-defaults --datadir="$data" --socket="$MYSQL_SOCKET" \
		--skip-networking --user=root --pid-file="$STATE/mysql/mariadbd.pid" \
		--log-error="$STATE/log/mariadbd.log" --innodb-buffer-pool-size=64M \
		--innodb-lock-wait-timeout=900
	wait_for 30 MariaDB mariadb-admin --no-defaults --socket="$MYSQL_SOCKET" ping
	log "MariaDB up"
}

start_slurmdbd() {
	# The mysql client library takes its default socket from MYSQL_UNIX_PORT.
	MYSQL_UNIX_PORT=$MYSQL_SOCKET launch slurmdbd slurmdbd -D
	wait_for 30 slurmdbd sacctmgr -n list cluster
	log "slurmdbd up"
}

register_accounting() {
	if [[ -z $(sacctmgr -n -P list cluster "$CLUSTER" format=cluster) ]]; then
		sacctmgr -i add cluster "$CLUSTER" >/dev/null || fail "sacctmgr add cluster failed"
	fi
	if [[ -z $(sacctmgr -n -P list account "$ACCOUNT" format=account) ]]; then
		sacctmgr -i add account "$ACCOUNT" Cluster="$CLUSTER" Description="clapsweep tests" \
			Organization=clapsweep >/dev/null || fail "sacctmgr add account failed"
	fi
	if [[ -z $(sacctmgr -n -P list assoc user=root account="$ACCOUNT" format=user) ]]; then
		sacctmgr -i add user root Account="$ACCOUNT" DefaultAccount="$ACCOUNT" >/dev/null ||
			fail "sacctmgr add user failed"
	fi
	log "accounting: cluster $CLUSTER, account $ACCOUNT, user root"
}

start_slurmctld() {
	launch slurmctld slurmctld -D -f "$SLURM_CONF"
	wait_for 30 slurmctld bash -c "scontrol ping | grep -q UP"
	log "slurmctld up"
}

start_slurmd() {
	launch slurmd slurmd -D -N localhost -f "$SLURM_CONF"
	# A node that was down (slurmd stopped) returns with ReturnToService=2; make sure.
	wait_for 30 "slurmd (node idle)" bash -c "sinfo -h -n localhost -o %T | grep -qv unknown"
	if ! node_idle; then
		scontrol update nodename=localhost state=resume >/dev/null 2>&1 || true
	fi
	wait_for 30 "node localhost idle" node_idle
	log "slurmd up, node idle"
}

# Every daemon we started must listen on 127.x only; slurmctld/slurmd/slurmdbd must listen.
check_loopback_only() {
	local name pid lines bad
	while read -r name pid; do
		lines=$(ss -ltnpH | grep "pid=$pid," || true)
		if [[ $name == slurm* && -z $lines ]]; then
			fail "$name (pid $pid) listens on no TCP port"
		fi
		bad=$(echo "$lines" | awk 'NF {print $4}' | grep -v '^127\.' || true)
		[[ -z $bad ]] || fail "$name (pid $pid) listens on non-loopback address(es): $bad"
	done <"$PIDS_FILE"
	log "all daemons listen on 127.0.0.1 only"
}

main() {
	ensure_root
	mkdir -p "$STATE/run" "$STATE/log"
	# One start or stop at a time per state dir (two test sessions may start together).
	exec 9>"$STATE/run/lock"
	flock -w 300 9 || fail "another start.sh/stop.sh holds $STATE/run/lock"
	if [[ -s $PIDS_FILE ]] && command -v scontrol >/dev/null && all_running; then
		echo "export SLURM_CONF=$SLURM_CONF"
		echo "# slurm-cluster: already running"
		return 0
	fi
	if [[ -s $PIDS_FILE ]]; then
		log "stale or partial cluster in $STATE: stopping its leftovers first"
		CLAPSWEEP_SLURM_LOCKED=1 bash "$HERE/stop.sh" "$STATE" >&2
	fi
	ensure_packages
	ensure_loopback_hostname
	ensure_ports_free
	write_configs
	: >"$PIDS_FILE"
	start_munge
	start_mariadb
	start_slurmdbd
	register_accounting
	start_slurmctld
	start_slurmd
	check_loopback_only
	log "cluster up in $STATE"
	echo "export SLURM_CONF=$SLURM_CONF"
	echo "# slurm-cluster: started in $(elapsed "$T0") s"
}

main
