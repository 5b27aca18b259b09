"""Through a real local Slurm: rendered scripts run, ranks wire up, preemption requeues."""
import json
import sys

import pytest

from bwkeras.launch import JobSpec, submit, write_script

pytestmark = pytest.mark.launcher

RANK_REPORT = (
    "import json, os; from bwkeras import distributed as d; d.init(); "
    "import numpy as np; s = float(d.allreduce(np.array(d.rank() + 1.0), op='sum')); "
    "open(os.path.join(os.environ['OUT_DIR'], f'rank{d.rank()}.json'), 'w')"
    ".write(json.dumps({'rank': d.rank(), 'size': d.size(), 'sum': s}))"
)


@pytest.mark.parametrize("launcher", ["srun", "horovodrun", "mpirun"])
def test_each_slurm_launcher_runs_two_ranks(slurm, tmp_path, monkeypatch, launcher):
    out = tmp_path / "out"
    out.mkdir()
    spec = JobSpec(command=[sys.executable, "-c", RANK_REPORT], scheduler="slurm", launcher=launcher,
                   nodes=1, tasks_per_node=2, time="00:05:00", workdir=str(tmp_path),
                   output=str(tmp_path / "job-%j.out"), job_name="x; rm -rf ~",
                   env={"OUT_DIR": str(out), "TF_CPP_MIN_LOG_LEVEL": "2",
                        "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"})
    # sbatch hands the submitting environment (PATH with this venv's python, horovodrun and
    # mpirun) to the job, as on a cluster.
    monkeypatch.setenv("SLURM_CONF", str(slurm.conf))
    job = submit(spec, write_script(spec, tmp_path))
    info = slurm.wait(job, timeout=180)
    log = "\n".join(p.read_text() for p in tmp_path.glob("job-*.out"))
    assert info["JobState"] == "COMPLETED", f"{info}\n{log}\n{slurm.log()}"
    assert info["JobName"] == "x; rm -rf ~"  # an inert string, all of it
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]
    assert [r["size"] for r in ranks] == [2, 2]
    assert [r["sum"] for r in ranks] == [3.0, 3.0]  # 1 + 2: the ranks really talked
