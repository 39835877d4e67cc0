"""One run across processes: ``mpiexec -n P nmfdnn train ...`` (nmfdnn/parallel.py).

Every test starts the real console script under the ``mpiexec`` that ``nmfdnn[mpi]`` installs (MPICH
from PyPI, beside this interpreter). Where MPI cannot start they skip with the reason — except on CI
(CI=true), where that is a failure: `make install` installs the extra there.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers.util import env_without_full_error, nmfdnn_command

from nmfdnn.checkpoint import load_checkpoint

SMALL = ["dataset=synthetic", "dataset.n_train=1200", "dataset.n_features=40", "hidden=[50,30]",
         "solver.batch_size=300", "solver.ae_samples=400", "epochs=3", "progress=false", "seed=5"]


def _unavailable(reason):
    if os.environ.get("CI") == "true":
        pytest.fail(f"MPI must run on CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def mpiexec():
    """The mpiexec beside this interpreter (else on PATH), checked to start 2 ranks that see each other."""
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        _unavailable("mpi4py is not installed (pip install 'nmfdnn[mpi]')")
    exe = Path(sys.executable).parent / "mpiexec"
    exe = str(exe) if exe.exists() else shutil.which("mpiexec")
    if exe is None:
        _unavailable("no mpiexec (pip install 'nmfdnn[mpi]' brings MPICH's)")
    probe = "from mpi4py import MPI; assert MPI.COMM_WORLD.Get_size() == 2"
    try:
        r = subprocess.run([exe, "-n", "2", sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        _unavailable("mpiexec -n 2 did not start two ranks within 120 s")
    if r.returncode != 0:
        _unavailable(f"mpiexec -n 2 cannot start two ranks here: {(r.stderr or r.stdout).strip()[-300:]}")
    return exe


def train(args, ranks=None, mpiexec=None, timeout=300):
    cmd = nmfdnn_command() + ["train", *args]
    if ranks is not None:
        cmd = [mpiexec, "-n", str(ranks), *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env_without_full_error())


def weights(run_dir):
    with np.load(Path(run_dir) / "model.npz") as z:
        return [z[k] for k in sorted(z.files) if k.startswith("W")]


def max_relative_difference(a, b):
    return max(np.linalg.norm(x - y) / np.linalg.norm(x) for x, y in zip(weights(a), weights(b)))


def metrics(run_dir):
    return json.loads((Path(run_dir) / "metrics.json").read_text())


def error_lines(r):
    return [ln for ln in r.stderr.splitlines() if ln.startswith("nmfdnn: error:")]


CASES = {
    "defaults": [],
    "bias-ridge": ["solver.bias=true", "solver.alpha=1e-3", "solver.beta=0.1", "solver.lam=1e-3",
                   "solver.ae_normalize=true", "solver.lsq_iters=3"],
    "gram-safeguard": ["solver.pinv=gram", "solver.safeguard=true", "solver.lsq_iters=2", "solver.semi_nmf_iters=2"],
    # a conv layer: its patch matrix's Gram and Algorithm 2's products summed over ranks; Algorithm 3's
    # CGLS per sample, so each rank's own columns (issue 37); dense widths below the conv output's 36, as
    # wider ones make their Gram matrices singular and the rcond cut-off amplifies rounding
    "conv": ["dataset.image=[2,6,6]", "conv=[{channels:4,kernel:3,pool:2,padding:1}]", "hidden=[30,20]",
             "solver.bias=true", "solver.lsq_iters=2"],
    # running Gram matrices: each batch's summed over the ranks before it is added
    "memory": ["solver.bias=true", "solver.memory=0.9", "solver.semi_nmf_iters=2"],
    # the Gauss-Newton filter step: J^T and the squared norms summed over the ranks, so every rank
    # takes the same CG steps. Few steps: CG amplifies the ranks' different summation order (one epoch
    # of this net, one process against two: 4 steps 1.6e-12, 10 steps 5e-4 relative)
    "conv-gauss-newton": ["dataset.image=[2,6,6]", "conv=[{channels:4,kernel:3,pool:2,padding:1}]", "hidden=[30,20]",
                          "solver.bias=true", "solver.filter_step=gauss_newton", "solver.filter_cg_iters=3",
                          "solver.memory=0.5"],
}


@pytest.mark.parametrize("case", CASES)
def test_two_ranks_give_the_single_process_weights(tmp_path, mpiexec, case):
    """Sums over columns in another order, nothing else: weights to 1e-10, the same error rates."""
    args = SMALL + CASES[case]
    one, two = tmp_path / "one", tmp_path / "two"
    r1 = train([*args, f"hydra.run.dir={one}"])
    r2 = train([*args, f"hydra.run.dir={two}"], 2, mpiexec)
    assert r1.returncode == 0 and r2.returncode == 0, r1.stderr[-2000:] + r2.stderr[-2000:]
    assert max_relative_difference(one, two) <= 1e-10
    m1, m2 = metrics(one), metrics(two)
    assert (m1["test_error"], m1["train_error"]) == (m2["test_error"], m2["train_error"])
    assert m2["info"]["ranks"] == 2 and m2["info"]["finetune_comm_seconds"] > 0
    # the same volume, counted in one process (what P ranks would send) and sent by two
    assert m2["info"]["allreduce_bytes_per_batch"] == m1["info"]["allreduce_bytes_per_batch"] > 0


def test_the_literal_input_slice_agrees_to_its_own_amplification(tmp_path, mpiexec):
    """The paper's literal slice V_1(J,:) is not a pseudo-inverse, and its iterations amplify rounding:
    the two-rank weights of this case differed from one process's by 5e-11, 1.4e-10 and 4e-10
    (relative, largest layer) after 1, 2 and 3 epochs. One epoch, 1e-9."""
    args = [*SMALL, "solver.input_pinv=literal", "epochs=1"]
    one, two = tmp_path / "one", tmp_path / "two"
    assert train([*args, f"hydra.run.dir={one}"]).returncode == 0
    assert train([*args, f"hydra.run.dir={two}"], 2, mpiexec).returncode == 0
    assert max_relative_difference(one, two) <= 1e-9


def test_four_ranks_oversubscribed(tmp_path, mpiexec):
    one, four = tmp_path / "one", tmp_path / "four"
    assert train([*SMALL, f"hydra.run.dir={one}"]).returncode == 0
    r = train([*SMALL, f"hydra.run.dir={four}"], 4, mpiexec)
    assert r.returncode == 0, r.stderr[-2000:]
    assert max_relative_difference(one, four) <= 1e-10
    assert metrics(four)["test_error"] == metrics(one)["test_error"]


def _rank_pids(run_dir):
    """The pids of the ranks running into ``run_dir`` (their command lines name it; mpiexec's too)."""
    pids = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            cmd = (p / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        text = b" ".join(cmd).decode(errors="replace")
        if str(run_dir) in text and "mpiexec" not in text and "nmfdnn" in text:
            pids.append(int(p.name))
    return sorted(pids)


@pytest.mark.slow
def test_a_rank_that_dies_ends_the_run_and_one_process_resumes_it(tmp_path, mpiexec):
    """SIGKILL of one rank after the first epoch's checkpoint: mpiexec ends the others (no hang);
    `nmfdnn resume` in one process continues from the two ranks' checkpoint to the weights of an
    uninterrupted single-process run (1e-6: over 300 epochs rounding grows; an uninterrupted two-rank
    run of this case differed from one process by 2e-7, measured). Then a resume with another config
    is refused in one line."""
    args = [*SMALL, "epochs=300"]  # about 5 s with two ranks on two cores
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    proc = subprocess.Popen([mpiexec, "-n", "2", *nmfdnn_command(), "train", *args, f"hydra.run.dir={killed}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=env_without_full_error())
    try:
        deadline = time.time() + 120
        while time.time() < deadline:  # a checkpoint after epoch 1 or later (the pre-training's is 0)
            ck = killed / "checkpoint.npz"
            if ck.exists():
                try:
                    if load_checkpoint(ck).epoch >= 1:
                        break
                except Exception:  # being written
                    pass
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before a rank could be killed"
        pids = _rank_pids(killed)
        assert len(pids) == 2, pids
        os.kill(pids[-1], signal.SIGKILL)
        t0 = time.time()
        proc.wait(timeout=60)  # no hang: the launcher takes the other rank down
        assert proc.returncode != 0 and time.time() - t0 < 60
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not (killed / "metrics.json").exists()
    r = subprocess.run(nmfdnn_command() + ["resume", str(killed)], capture_output=True, text=True, timeout=600,
                       env=env_without_full_error())
    assert r.returncode == 0, r.stderr[-2000:]
    assert "resuming from" in r.stderr
    assert train([*args, f"hydra.run.dir={whole}"]).returncode == 0
    assert max_relative_difference(whole, killed) <= 1e-6
    other = train([*args, "seed=3", "resume=true", f"hydra.run.dir={killed}"], 2, mpiexec)
    assert other.returncode == 2 and len(error_lines(other)) == 1, other.stderr
    assert "another config" in error_lines(other)[0]


@pytest.mark.parametrize("extra, ranks, message", [
    (["solver=bp"], 2, "solver=bp runs in one process"),
    (["solver.pinv=svd"], 2, "solver.pinv=svd needs all columns"),
    (["solver.input_pinv=qr"], 2, "solver.input_pinv=qr needs a whole batch"),
    (["hidden=[2]", "solver.batch_size=3", "solver.ae_samples=3"], 4,
     "4 processes but the smallest mini-batch has 3 samples"),
])
def test_what_cannot_be_split_is_one_line(tmp_path, mpiexec, extra, ranks, message):
    r = train([*SMALL, *extra, f"hydra.run.dir={tmp_path / 'run'}"], ranks, mpiexec)
    assert r.returncode == 2
    assert len(error_lines(r)) == 1 and message in error_lines(r)[0], r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "run").exists()


def test_a_launcher_without_mpi4py_is_one_line(tmp_path):
    """What mpiexec would give each process (PMI_SIZE), with mpi4py missing: one line, nothing written."""
    fake = tmp_path / "fake" / "mpi4py"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('mpi4py is not installed')\n")
    env = env_without_full_error() | {"PMI_SIZE": "2", "PMI_RANK": "0", "PYTHONPATH": str(fake.parent)}
    r = subprocess.run(nmfdnn_command() + ["train", *SMALL, f"hydra.run.dir={tmp_path / 'run'}"],
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 2 and len(error_lines(r)) == 1, r.stderr
    assert "mpi4py is missing" in error_lines(r)[0] and "Traceback" not in r.stderr
    assert not (tmp_path / "run").exists()


def test_srun_without_an_mpi_plugin_is_one_line(tmp_path):
    """What a plain `srun -n 2` gives each task (no PMI): the two would not know of each other and would
    write the same run; refused in one line, printed by task 0 only."""
    pytest.importorskip("mpi4py")
    base = {k: v for k, v in env_without_full_error().items() if not k.startswith(("PMI_", "OMPI_", "PMIX_"))}
    for task, expect_line in (("0", True), ("1", False)):
        env = base | {"SLURM_STEP_NUM_TASKS": "2", "SLURM_PROCID": task}
        r = subprocess.run(nmfdnn_command() + ["train", *SMALL, f"hydra.run.dir={tmp_path / 'run'}"],
                           capture_output=True, text=True, timeout=120, env=env)
        assert r.returncode == 2 and "Traceback" not in r.stderr
        assert len(error_lines(r)) == int(expect_line), r.stderr
        if expect_line:
            assert "srun --mpi=pmi2" in error_lines(r)[0]
    assert not (tmp_path / "run").exists()


def test_one_process_has_no_mpi():
    """Without a launcher nothing imports mpi4py and the world is one rank (identities)."""
    code = ("import sys; from nmfdnn.parallel import world; w = world(); "
            "print(w.size, w.rank, 'mpi4py' in sys.modules)")
    env = {k: v for k, v in env_without_full_error().items()
           if not k.startswith(("PMI_", "OMPI_", "PMIX_", "SLURM_STEP_NUM_TASKS"))}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert r.stdout.split() == ["1", "0", "False"], r.stderr


def test_the_scaling_model():
    """The model of outputs/mpi: a ring all-reduce's cost, and efficiencies that start at 1, fall with P
    at a fixed batch and tend to F_par / (F_par + F_rep) with grown batches and a free network."""
    from nmfdnn.maint.mpi import allreduce_seconds, model

    assert allreduce_seconds(1e9, 10, 1, 1e9, 1e-6) == 0.0
    assert allreduce_seconds(1e9, 10, 2, 1e9, 1e-6) == pytest.approx(1.0 + 10 * 2 * 1e-6)
    assert allreduce_seconds(1e9, 10, 64, 1e9, 0.0) == pytest.approx(2 * 63 / 64)
    counts = {"[8]": {"batch": 100, "F_par": 9e9, "F_rep": 1e9, "allreduce_bytes": 1e6, "allreduce_calls": 4}}
    m = model(counts, rate=1e9, ranks=(1, 2, 64), links={"free": (1e30, 0.0), "slow": (1e6, 1e-3)})
    eff = m["networks"]["[8]"]["efficiency"]
    fixed, grown = eff["free, batch 100"], eff["free, batch P x 100"]
    assert fixed[1] == grown[1] == pytest.approx(1.0)
    assert fixed[2] == pytest.approx(10 / (2 * 5.5))  # (9 + 1) / (2 (4.5 + 1))
    assert grown[64] == pytest.approx((9 * 64 + 1) / (64 * 10))
    assert eff["slow, batch 100"][64] < fixed[64] < fixed[2]


def test_compare_reports_the_weight_difference(tmp_path, mpiexec):
    from nmfdnn.maint.mpi import compare

    one, two = tmp_path / "one", tmp_path / "two"
    assert train([*SMALL, "epochs=1", f"hydra.run.dir={one}"]).returncode == 0
    assert train([*SMALL, "epochs=1", f"hydra.run.dir={two}"], 2, mpiexec).returncode == 0
    c = compare(one, two)
    assert c["runs"]["one"]["ranks"] == 1 and c["runs"]["two"]["ranks"] == 2
    assert c["max_relative_difference"] == pytest.approx(max_relative_difference(one, two))
    assert c["max_relative_difference"] <= 1e-10
