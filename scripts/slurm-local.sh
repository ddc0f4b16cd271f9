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

munge_works() {
    munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1
}

start_munge() {
    if munge_works; then return; fi
    # A munged that is exiting (or wedged) answers nothing: stop it and start afresh.
    pkill -x munged 2>/dev/null || true
    for _ in $(seq 1 20); do pgrep -x munged >/dev/null || break; sleep 0.25; done
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
    for _ in $(seq 1 40); do
        if munge_works; then return; fi
        sleep 0.25
    done
    echo "slurm-local.sh: munged does not answer (see /var/log/munge/munged.log)" >&2
    exit 1
}

running() {
    pgrep -x slurmctld >/dev/null && pgrep -x slurmd >/dev/null
}

# The daemons run and the node takes jobs (`idle`, `mix`, `alloc`; a `*` means not responding).
node_up() {
    running && [ -f "$CONF" ] \
        && timeout 5 sinfo -h -o '%t' 2>/dev/null | grep -Eq '^(idle|mix|alloc)$'
}

stop_daemons() {
    pkill -x slurmd 2>/dev/null || true
    pkill -x slurmctld 2>/dev/null || true
    for _ in $(seq 1 40); do
        pgrep -x slurmd >/dev/null || pgrep -x slurmctld >/dev/null || return 0
        sleep 0.25
    done
    pkill -9 -x slurmd 2>/dev/null || true
    pkill -9 -x slurmctld 2>/dev/null || true
}

start() {
    install_packages
    need_root
    start_munge
    if node_up; then
        echo "export SLURM_CONF=$CONF"
        return
    fi
    # Anything half up (daemons started without munge, a node that never registered) starts
    # afresh, with no saved state: this cluster holds no job worth keeping.
    stop_daemons
    write_conf
    rm -rf "$DIR/state" "$DIR/spool"
    mkdir -p "$DIR/state" "$DIR/spool"
    slurmctld -f "$CONF"
    slurmd -f "$CONF"
    for _ in $(seq 1 120); do
        if node_up; then
            echo "export SLURM_CONF=$CONF"
            return
        fi
        sleep 0.5
    done
    echo "slurm-local.sh: the node did not come up; logs in $DIR/log" >&2
    timeout 5 sinfo >&2 || true
    tail -n 20 "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log" >&2 || true
    exit 1
}

stop() {
    stop_daemons
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
