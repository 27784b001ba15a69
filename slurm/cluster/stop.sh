#!/usr/bin/env bash
# Stop the single-node SLURM cluster that slurm/cluster/start.sh started.
#
# Usage: bash slurm/cluster/stop.sh [STATE_DIR]      (default /tmp/clapsweep-slurm)
#
# Cancels the cluster's jobs (so no job step outlives it), then stops exactly the PIDs listed in
# STATE_DIR/run/started.pids, newest first, never processes found by name. A PID is only
# signalled while its command is still the daemon start.sh launched (a recycled PID is left
# alone). Idempotent: with nothing running it does nothing and succeeds. The state dir (config,
# munge key, accounting database) stays, so the next start keeps job IDs and history.
set -euo pipefail

STATE=$(realpath -m "${1:-/tmp/clapsweep-slurm}")
export SLURM_CONF=$STATE/etc/slurm.conf
PIDS_FILE=$STATE/run/started.pids

log() { echo "[slurm-cluster stop] $*" >&2; }

# ours PID NAME: the process exists, is not a zombie, and runs the daemon NAME.
ours() {
	[[ -r /proc/$1/comm ]] || return 1
	[[ $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) != Z ]] || return 1
	# comm holds the first 15 characters of the program name; the daemons' names are shorter.
	[[ $(cat "/proc/$1/comm" 2>/dev/null) == "$2" ]]
}

cancel_jobs() {
	local ctld_pid
	ctld_pid=$(awk '$1 == "slurmctld" {print $2}' "$PIDS_FILE")
	[[ -n $ctld_pid ]] && ours "$ctld_pid" slurmctld || return 0
	command -v squeue >/dev/null || return 0
	local jobs
	jobs=$(squeue -h -o %A 2>/dev/null || true)
	[[ -n $jobs ]] || return 0
	log "cancelling jobs: $(echo "$jobs" | tr '\n' ' ')"
	# shellcheck disable=SC2086 # one argument per job id
	scancel $jobs 2>/dev/null || true
	local i
	for i in $(seq 100); do
		[[ -z $(squeue -h -o %A 2>/dev/null || true) ]] && return 0
		sleep 0.1
	done
	log "jobs still listed after 10 s; stopping the daemons anyway"
}

stop_pid() {
	local name=$1 pid=$2 i
	if ! ours "$pid" "$name"; then
		return 0
	fi
	kill -TERM "$pid" 2>/dev/null || return 0
	for i in $(seq 150); do
		ours "$pid" "$name" || {
			log "$name (pid $pid) stopped"
			return 0
		}
		sleep 0.1
	done
	log "$name (pid $pid) ignored SIGTERM for 15 s: SIGKILL"
	kill -KILL "$pid" 2>/dev/null || true
}

main() {
	if [[ ! -s $PIDS_FILE ]]; then
		log "nothing to stop in $STATE"
		return 0
	fi
	if [[ $(id -u) != 0 ]]; then
		echo "stop.sh: FAILED: needs root (the daemons run as root)" >&2
		exit 1
	fi
	# start.sh calls us while it holds the lock (CLAPSWEEP_SLURM_LOCKED=1).
	if [[ ${CLAPSWEEP_SLURM_LOCKED:-0} != 1 ]]; then
		exec 9>"$STATE/run/lock"
		flock -w 300 9 || {
			echo "stop.sh: FAILED: another start.sh/stop.sh holds $STATE/run/lock" >&2
			exit 1
		}
	fi
	cancel_jobs
	local name pid
	# Reverse start order: slurmd, slurmctld, slurmdbd, MariaDB, munged.
	while read -r name pid; do
		stop_pid "$name" "$pid"
	done < <(tac "$PIDS_FILE")
	rm -f "$PIDS_FILE"
	log "stopped"
}

main
