"""Render Slurm (sbatch) and PBS/aprun batch scripts from a JobSpec.

Every user value in the script body goes through shlex.quote, so a job name such as
`x; rm -rf ~` stays an inert string; directive lines (#SBATCH, #PBS) are read by the
scheduler, never by the shell, and JobSpec already refused line breaks in them.
"""
import shlex
import sys

from .spec import EXIT_PREEMPTED

q = shlex.quote


def _directive(value):
    """A directive value in double quotes, as Slurm and PBS read them: spaces, ';', '$'
    stay literal, and JobSpec already refused line breaks."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _command(spec):
    return " ".join(q(a) for a in spec.command)


def _model_parallel_note(spec):
    k = spec.model_parallel
    if not k or k == 1:
        return []
    return [f"# Model parallel: the {spec.ntasks} ranks form {spec.ntasks // k} model group(s) "
            f"of {k} ranks (model.model_parallel={k})."]


def _exports(spec):
    return [f"export {k}={q(v)}" for k, v in sorted(spec.env.items())]


# After the training: a run that stopped on the warning (exit EXIT_PREEMPTED, or any
# failure once the stop was requested: horovodrun reports its ranks' exit as its own
# error) had checkpointed; with --requeue it is requeued and resumes from there, at most
# BWKERAS_MAX_REQUEUES times.
_SLURM_TAIL = f"""preempted=0
[ "$status" -eq {EXIT_PREEMPTED} ] && preempted=1
[ "$status" -ne 0 ] && [ -e "$BWKERAS_STOP_FILE" ] && preempted=1
rm -f "$BWKERAS_STOP_FILE"
if [ "$preempted" = 1 ] && [ "${{BWKERAS_REQUEUE:-0}}" = 1 ] \\
   && [ "${{SLURM_RESTART_COUNT:-0}}" -lt "${{BWKERAS_MAX_REQUEUES:-10}}" ]; then
  echo "bwkeras: stopped on the scheduler's warning after a checkpoint; requeueing job $SLURM_JOB_ID"
  scontrol requeue "$SLURM_JOB_ID"
  exit 0
fi
exit "$status"
"""


# --min-nodes: every attempt of the retry loops, timed, in the attempts log.
_LOG_ATTEMPT = 'log_attempt() { echo "$(date +%Y-%m-%dT%H:%M:%S) $*" | tee -a "${BWKERAS_ATTEMPTS_LOG:-attempts.log}"; }'


def _slurm_retry(spec):
    """The srun launch in a loop over ever fewer nodes (spec.min_nodes): after a failed
    attempt, the allocation's nodes are probed (a one-task step on each, 30 s at most,
    --overlap: the failed step may still hold the nodes' CPUs while it ends);
    when fewer answer than the attempt ran on, the training starts again on those from
    its last checkpoint (the command's --run-dir resumes), down to min_nodes. A failure
    with every node of the attempt answering is not a lost node: no retry. Every attempt
    is logged in $BWKERAS_ATTEMPTS_LOG (`bwkeras submit`: the run folder's attempts.log)."""
    tpn = spec.tasks_per_node
    return [
        "# --min-nodes: each attempt runs on the nodes that still answer, from the last checkpoint.",
        "answering() {",
        '  for n in $(scontrol show hostnames "$SLURM_JOB_NODELIST"); do',
        '    timeout 30 srun --overlap --nodes=1 --ntasks=1 --nodelist="$n" --quiet true >/dev/null 2>&1 && echo "$n"',
        "  done | paste -sd, -",
        "}",
        _LOG_ATTEMPT,
        "attempt=0",
        "used=0",
        "while true; do",
        "  attempt=$((attempt + 1))",
        '  NODES=$(answering)',
        '  NNODES=$(echo "$NODES" | tr , "\\n" | grep -c .)',
        f'  if [ "$NNODES" -lt {spec.min_nodes} ]; then',
        f'    log_attempt "bwkeras: attempt $attempt: $NNODES of $SLURM_JOB_NUM_NODES nodes answer '
        f'(${{NODES:-none}}), fewer than --min-nodes {spec.min_nodes}; stopping"',
        "    status=1; break",
        "  fi",
        '  if [ "$used" -gt 0 ] && [ "$NNODES" -ge "$used" ]; then',
        '    log_attempt "bwkeras: attempt $((attempt - 1)) failed (exit $status) with all its $used nodes '
        'answering: not a lost node; stopping"',
        "    break",
        "  fi",
        '  log_attempt "bwkeras: attempt $attempt on $NNODES nodes ($NODES)"',
        "  # --overlap: a step that lost a node holds the CPUs of the others until Slurm has",
        "  # written the lost one off; its tasks there are gone, the new step may use them",
        f'  srun --mpi=pmix --overlap --nodes="$NNODES" --nodelist="$NODES" --ntasks=$((NNODES * {tpn})) '
        f"--ntasks-per-node={tpn} --kill-on-bad-exit=1 {_command(spec)} &",
        "  child=$!",
        "  # a trapped signal interrupts `wait`: wait again until the training really ended",
        '  while true; do wait "$child"; status=$?; kill -0 "$child" 2>/dev/null || break; done',
        '  log_attempt "bwkeras: attempt $attempt ended with exit $status"',
        f'  [ "$status" -eq 0 ] || [ "$status" -eq {EXIT_PREEMPTED} ] || [ -e "$BWKERAS_STOP_FILE" ] && break',
        '  used=$NNODES',
        "done",
    ]


def _slurm_elastic(spec):
    """horovodrun's elastic driver, with a host discovery script it runs every second:
    the allocation's nodes that answer over ssh (how horovodrun starts the workers), in
    parallel, 10 s at most each. A node that stops answering leaves the job from the last
    commit; one that answers again joins it at the next commit."""
    min_np = (spec.min_nodes or 1) * spec.tasks_per_node
    return [
        "# --elastic: the hosts are the allocation's nodes that answer over ssh.",
        'DISCOVER="${TMPDIR:-/tmp}/bwkeras-discover-$SLURM_JOB_ID.sh"',
        "cat > \"$DISCOVER\" <<'EOF'",
        "#!/bin/bash",
        'for n in $(scontrol show hostnames "$SLURM_JOB_NODELIST"); do',
        "  ( timeout 10 ssh -o BatchMode=yes -o StrictHostKeyChecking=no -o ConnectTimeout=5 \"$n\" true "
        f'</dev/null >/dev/null 2>&1 && echo "$n:{spec.tasks_per_node}" ) &',
        "done",
        "wait",
        "EOF",
        'chmod +x "$DISCOVER"',
    ], (f'horovodrun --gloo -np {spec.ntasks} --min-np {min_np} --max-np {spec.ntasks} '
        f'--host-discovery-script "$DISCOVER" {_command(spec)}')


def render_slurm(spec):
    lines = [
        "#!/bin/bash",
        f"#SBATCH --job-name={_directive(spec.job_name)}",
        f"#SBATCH --nodes={spec.nodes}",
        f"#SBATCH --ntasks-per-node={spec.tasks_per_node}",
        f"#SBATCH --cpus-per-task={spec.cpus_per_task}",
        f"#SBATCH --time={spec.time}",
        f"#SBATCH --output={_directive(spec.output)}",
        f"#SBATCH --chdir={_directive(spec.workdir)}",
    ]
    if spec.account:
        lines.append(f"#SBATCH --account={_directive(spec.account)}")
    if spec.partition:
        lines.append(f"#SBATCH --partition={_directive(spec.partition)}")
    if spec.signal_seconds:
        # B: the batch shell gets the warning; it forwards SIGTERM to the training below.
        lines.append(f"#SBATCH --signal=B:USR1@{spec.signal_seconds}")
    if spec.requeue:
        lines.append("#SBATCH --requeue")
        lines.append("#SBATCH --open-mode=append")
    if spec.min_nodes is not None or spec.elastic:
        lines.append("#SBATCH --no-kill")  # a failed node leaves the allocation to the others
    lines += _model_parallel_note(spec)
    lines += [
        "set -u",
        f"export BWKERAS_REQUEUE={int(spec.requeue)}",
        "export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}",
        *_exports(spec),
        "",
    ]
    if spec.launcher == "srun":
        # Horovod built with MPI: srun starts the ranks and PMIx wires them up. Without
        # --kill-on-bad-exit srun waits for every task (Slurm's WaitTime defaults to
        # unlimited): a rank the stall watchdog ended would leave a frozen one running.
        launch = (f"srun --mpi=pmix --ntasks={spec.ntasks} --ntasks-per-node={spec.tasks_per_node} "
                  f"--kill-on-bad-exit=1 {_command(spec)}")
    elif spec.launcher == "srun-gloo":
        # Gloo without MPI or ssh: srun starts the ranks, the wrapper runs the rendezvous.
        launch = (f"{q(sys.executable)} -m bwkeras.distributed.srun_gloo --ntasks {spec.ntasks} "
                  f"--ntasks-per-node {spec.tasks_per_node} -- {_command(spec)}")
    elif spec.elastic:
        body, launch = _slurm_elastic(spec)
        lines += body
    elif spec.launcher == "horovodrun":
        # Gloo: horovodrun needs host:slots for every node of the allocation.
        lines.append(
            f'HOSTS=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | sed "s/$/:{spec.tasks_per_node}/" | paste -sd, -)'
        )
        launch = f'horovodrun --gloo -np {spec.ntasks} -H "$HOSTS" {_command(spec)}'
    else:  # mpirun inside the allocation
        launch = (f"mpirun -np {spec.ntasks} --map-by ppr:{spec.tasks_per_node}:node "
                  f"--bind-to none {_command(spec)}")
    lines += [
        "# The scheduler's warning (USR1 via --signal, or TERM) reaches this shell; it asks the",
        "# ranks to stop through a file they check at every epoch end: they finish the epoch,",
        "# checkpoint, and exit with the 'preempted' status. Works the same for every launcher.",
        'export BWKERAS_STOP_FILE="${BWKERAS_STOP_FILE:-$PWD/.bwkeras-stop-$SLURM_JOB_ID}"',
        'rm -f "$BWKERAS_STOP_FILE"',
        "trap 'touch \"$BWKERAS_STOP_FILE\"' USR1 TERM",
    ]
    if spec.min_nodes is not None and not spec.elastic:
        lines += _slurm_retry(spec)
    else:
        lines += [
            f"{launch} &",
            "child=$!",
            '# A trapped signal interrupts `wait`: wait again until the training really ended.',
            'while true; do wait "$child"; status=$?; kill -0 "$child" 2>/dev/null || break; done',
        ]
        if spec.elastic:
            lines.append('rm -f "$DISCOVER"')
    lines += [_SLURM_TAIL]
    return "\n".join(lines)


def render_pbs(spec):
    """Blue Waters style: nodes/ppn, walltime, `aprun -n -N -d -cc none -b`."""
    lines = [
        "#!/bin/bash",
        f"#PBS -N {_directive(spec.job_name)}",
        f"#PBS -l nodes={spec.nodes}:ppn={spec.tasks_per_node * spec.cpus_per_task}",
        f"#PBS -l walltime={spec.time}",
        "#PBS -j oe",
    ]
    if spec.account:
        lines.append(f"#PBS -A {_directive(spec.account)}")
    if spec.partition:
        lines.append(f"#PBS -q {_directive(spec.partition)}")
    lines += _model_parallel_note(spec)
    lines += [
        "set -u",
        'cd "${PBS_O_WORKDIR:-.}"',
        f"cd {q(spec.workdir)}",
        "# Horovod's background thread calls MPI from a second thread.",
        "export MPICH_MAX_THREAD_SAFETY=multiple",
        f"export OMP_NUM_THREADS={spec.cpus_per_task}",
        *_exports(spec),
        "",
    ]
    tpn = spec.tasks_per_node
    ranks = spec.ntasks if spec.min_nodes is None else f"$((NODES_USED * {tpn}))"
    if spec.launcher == "aprun":
        # -n ranks, -N ranks per node, -d cores per rank, -cc none: no core binding (the
        # Horovod thread moves freely), -b: run the command as is, no binary staging.
        launch = f"aprun -n {ranks} -N {tpn} -d {spec.cpus_per_task} -cc none -b {_command(spec)}"
    else:
        launch = f"mpirun -np {ranks} --map-by ppr:{tpn}:node {_command(spec)}"
    if spec.min_nodes is None:
        lines += [launch, ""]
        return "\n".join(lines)
    # --min-nodes: the tutorial's own loop over ever fewer nodes (a failed node killed the
    # whole aprun), each attempt from the last checkpoint (the command's --run-dir
    # resumes); every attempt logged in $BWKERAS_ATTEMPTS_LOG.
    lines += [
        _LOG_ATTEMPT,
        "status=1",
        f"for NODES_USED in $(seq {spec.nodes} -1 {spec.min_nodes}); do",
        '  log_attempt "bwkeras: attempt on $NODES_USED nodes"',
        f"  {launch}",
        "  status=$?",
        '  log_attempt "bwkeras: $NODES_USED nodes: exit $status"',
        '  [ "$status" -eq 0 ] && break',
        "done",
        f'[ "$status" -ne 0 ] && log_attempt "bwkeras: every attempt down to --min-nodes {spec.min_nodes} failed; stopping"',
        'exit "$status"',
        "",
    ]
    return "\n".join(lines)


def render(spec):
    return render_slurm(spec) if spec.scheduler == "slurm" else render_pbs(spec)
