#!/usr/bin/env bash
# A single-node Slurm cluster on this machine, for rora's Slurm tests and for trying
# `rora run --executor slurm` without a site cluster.
#
#   scripts/slurm-local.sh start    # install slurm-wlm + munge when missing (Debian, as root), start
#                                   # munged, slurmctld and slurmd; prints `export SLURM_CONF=...`
#   scripts/slurm-local.sh status   # sinfo and squeue of the local cluster
#   scripts/slurm-local.sh stop     # stop the daemons (state stays under the directory)
#
# Everything lives under $RORA_SLURM_DIR (default /tmp/rora-slurm): slurm.conf, state, spool, pid and
# log files. Runs as root without systemd: `ProctrackType=proctrack/linuxproc`, `TaskPlugin=task/none`
# (no cgroups), `AccountingStorageType=accounting_storage/none` (so there is no sacct; rora polls
# squeue, and `MinJobAge` keeps finished jobs visible to it for an hour).
set -euo pipefail

DIR="${RORA_SLURM_DIR:-/tmp/rora-slurm}"
CONF="$DIR/slurm.conf"
export SLURM_CONF="$CONF"

need_root() {
    [ "$(id -u)" = 0 ] || { echo "slurm-local.sh: run as root (it starts slurmctld/slurmd as SlurmUser=root)" >&2; exit 1; }
}

install_packages() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null \
        && command -v sbatch >/dev/null; then
        return
    fi
    need_root
    echo "slurm-local.sh: installing slurm-wlm and munge (apt-get)" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
}

write_conf() {
    local host cpus mem
    host="$(hostname -s)"
    cpus="$(nproc)"
    # RealMemory in MiB, a little under what the kernel reports so slurmd accepts it.
    mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 9 / 10 ))
    mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log"
    cat > "$CONF" <<CONF
# Written by rora's scripts/slurm-local.sh: a one-node cluster for tests.
ClusterName=rora-local
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
SwitchType=switch/none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ReturnToService=2
MinJobAge=3600
KillWait=5
SchedulerParameters=sched_interval=2,bf_interval=2
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
}

start_munge() {
    if pgrep -x munged >/dev/null; then return; fi
    [ -s /etc/munge/munge.key ] || mungekey -c -f >/dev/null 2>&1 || mungekey -c
    chown munge:munge /etc/munge/munge.key 2>/dev/null || true
    chmod 0400 /etc/munge/munge.key
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    chmod 0755 /run/munge
    if command -v runuser >/dev/null; then
        runuser -u munge -- munged
    else
        su -s /bin/sh munge -c munged
    fi
}

running() {
    pgrep -x slurmctld >/dev/null && pgrep -x slurmd >/dev/null
}

start() {
    install_packages
    need_root
    if running && [ -f "$CONF" ]; then
        echo "export SLURM_CONF=$CONF"
        return
    fi
    write_conf
    start_munge
    pgrep -x slurmctld >/dev/null || slurmctld -f "$CONF"
    pgrep -x slurmd >/dev/null || slurmd -f "$CONF"
    # Wait until the node takes jobs.
    for _ in $(seq 1 60); do
        if sinfo -h -o '%t' 2>/dev/null | grep -Eq '^(idle|mix|alloc)'; then
            echo "export SLURM_CONF=$CONF"
            return
        fi
        sleep 0.5
    done
    echo "slurm-local.sh: the node did not come up; logs in $DIR/log" >&2
    sinfo >&2 || true
    tail -n 20 "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log" >&2 || true
    exit 1
}

stop() {
    pkill -x slurmd 2>/dev/null || true
    pkill -x slurmctld 2>/dev/null || true
    for _ in $(seq 1 20); do
        pgrep -x slurmd >/dev/null || pgrep -x slurmctld >/dev/null || break
        sleep 0.25
    done
    echo "stopped"
}

status() {
    if ! running; then echo "not running"; exit 1; fi
    echo "export SLURM_CONF=$CONF"
    sinfo
    squeue
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
