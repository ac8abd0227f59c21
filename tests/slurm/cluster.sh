#!/usr/bin/env bash
# A real single-node SLURM cluster on this machine, for tests:
#   tests/slurm/cluster.sh install        apt-get slurmd/slurmctld/munge if missing (root)
#   tests/slurm/cluster.sh start DIR      write DIR/slurm.conf (+ gres.conf, fake GPU), start munged,
#                                         slurmctld, slurmd; prints `export SLURM_CONF=...`
#   tests/slurm/cluster.sh stop DIR       stop the daemons by their PID files
# Accounting storage is off (the snakemake plugin must use `squeue` for status), one node with
# one fake GPU (GRES with AutoDetect=off and a plain device file), two partitions: cpu and gpu.
set -euo pipefail
cmd=${1:?usage: cluster.sh install|start DIR|stop DIR}

install() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null; then
        return 0
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurmd slurmctld slurm-client munge >/dev/null
}

start() {
    local dir=$1 host cpus mem
    mkdir -p "$dir"/{state,spool,log,munge}
    dir=$(cd "$dir" && pwd)
    host=$(hostname -s)
    cpus=$(nproc)
    mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
    # munge: a private key and socket in DIR, so nothing system-wide is touched
    dd if=/dev/urandom bs=1 count=1024 of="$dir/munge/munge.key" 2>/dev/null
    chmod 400 "$dir/munge/munge.key"
    chmod 700 "$dir/munge"
    munged --force --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket" \
        --pid-file="$dir/munge/munged.pid" --log-file="$dir/log/munged.log" --seed-file="$dir/munge/seed"
    touch "$dir/fake_gpu0"
    cat > "$dir/gres.conf" <<GRES
AutoDetect=off
NodeName=$host Name=gpu File=$dir/fake_gpu0
GRES
    cat > "$dir/slurm.conf" <<CONF
ClusterName=eoembed-test
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
CredType=cred/munge
SlurmctldPort=16817
SlurmdPort=16818
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
GresTypes=gpu
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
# status polling by squeue needs finished jobs to stay visible for a while
MinJobAge=300
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
NodeName=$host CPUs=$cpus RealMemory=$mem Gres=gpu:1 State=UNKNOWN
PartitionName=cpu Nodes=$host Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$host Default=NO MaxTime=INFINITE State=UP
CONF
    # job steps (srun inside a batch job) look for the default config path, whatever
    # SLURM_CONF said at submission: link ours there unless a real one exists
    mkdir -p /etc/slurm
    for f in slurm.conf gres.conf; do
        if [[ ! -e /etc/slurm/$f || -L /etc/slurm/$f ]]; then
            ln -sfn "$dir/$f" "/etc/slurm/$f"
        fi
    done
    export SLURM_CONF=$dir/slurm.conf
    slurmctld -f "$dir/slurm.conf"
    slurmd -f "$dir/slurm.conf"
    for _ in $(seq 60); do
        if sinfo -h -o "%T" 2>/dev/null | grep -qE "idle|mixed"; then
            echo "export SLURM_CONF=$dir/slurm.conf"
            return 0
        fi
        sleep 1
    done
    echo "SLURM did not come up; logs in $dir/log" >&2
    tail -n 20 "$dir"/log/*.log >&2 || true
    return 1
}

stop() {
    local dir=$1
    for pidfile in "$dir/slurmd.pid" "$dir/slurmctld.pid" "$dir/munge/munged.pid"; do
        if [[ -f $pidfile ]]; then
            kill "$(cat "$pidfile")" 2>/dev/null || true
        fi
    done
    for f in slurm.conf gres.conf; do
        if [[ -L /etc/slurm/$f && $(readlink "/etc/slurm/$f") == "$dir/$f" ]]; then
            rm -f "/etc/slurm/$f"
        fi
    done
    sleep 1
    for pidfile in "$dir/slurmd.pid" "$dir/slurmctld.pid" "$dir/munge/munged.pid"; do
        if [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
            kill -9 "$(cat "$pidfile")" 2>/dev/null || true
        fi
    done
}

case $cmd in
    install) install ;;
    start) start "${2:?DIR}" ;;
    stop) stop "${2:?DIR}" ;;
    *) echo "unknown command $cmd" >&2; exit 2 ;;
esac
