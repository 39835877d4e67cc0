"""Every optional dependency missing: one line naming the extra to install (``pip install
'nmfdnn[EXTRA]'``), exit 2, before any work. The modules are hidden from a subprocess by a
``sitecustomize`` on its PYTHONPATH (an import finder that refuses them), not uninstalled."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from util import env_without_full_error, nmfdnn_command

HIDER = '''import os, sys

HIDDEN = [m for m in os.environ.get("NMFDNN_TEST_HIDE", "").split(",") if m]


class Hide:
    """An import finder that makes the modules of NMFDNN_TEST_HIDE (and their submodules) missing."""

    def find_spec(self, name, path=None, target=None):
        if any(name == m or name.startswith(m + ".") for m in HIDDEN):
            raise ModuleNotFoundError(f"No module named {name!r} (hidden by the test)", name=name)
        return None


sys.meta_path.insert(0, Hide())
'''

TINY = ["dataset=synthetic", "hidden=[20]", "epochs=2", "solver.batch_size=300", "solver.ae_samples=300",
        "progress=false"]


@pytest.fixture(scope="module")
def hider(tmp_path_factory):
    d = tmp_path_factory.mktemp("hider")
    (d / "sitecustomize.py").write_text(HIDER)
    return d


def run_hidden(hider, hidden, args, cwd, env=None, command=None):
    e = {**env_without_full_error(), **(env or {}), "NMFDNN_TEST_HIDE": ",".join(hidden),
         "PYTHONPATH": os.pathsep.join([str(hider), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    return subprocess.run((command or nmfdnn_command()) + list(map(str, args)), cwd=cwd, env=e, capture_output=True,
                          text=True, timeout=120)


CASES = [
    ("optuna", ["optuna"], ["tune", "nmf_optuna", "hidden=[500]"], "tune"),
    ("submitit (tune --slurm)", ["submitit"], ["tune", "nmf_optuna", "hidden=[500]", "--slurm"], "sweep"),
    ("hydra/launcher=slurm", ["hydra_plugins.hydra_submitit_launcher", "submitit"],
     ["train", "-m", "hydra/launcher=slurm", "seed=0,1", *TINY], "sweep"),
    ("hydra/launcher=parallel", ["hydra_plugins.hydra_joblib_launcher"],
     ["train", "-m", "hydra/launcher=parallel", "seed=0,1", *TINY], "sweep"),
    ("plot", ["matplotlib"], ["plot", "."], "plot"),
    ("backend=cupy", ["cupy"], ["train", "backend=cupy", *TINY], "gpu"),
]


@pytest.mark.parametrize("case, hidden, args, extra", CASES, ids=[c[0] for c in CASES])
def test_a_missing_extra_is_one_line_naming_it(hider, tmp_path, case, hidden, args, extra):  # noqa: ARG001
    r = run_hidden(hider, hidden, args, tmp_path)
    assert r.returncode == 2, r.stderr[-2000:]
    assert f"pip install 'nmfdnn[{extra}]'" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not list(tmp_path.iterdir())  # before any work: no folder, no run


def test_mpi_without_mpi4py_is_one_line(hider, tmp_path):
    r = run_hidden(hider, ["mpi4py"], ["train", *TINY], tmp_path, env={"PMI_SIZE": "2", "PMI_RANK": "0"})
    assert r.returncode == 2 and "pip install 'nmfdnn[mpi]'" in r.stderr, r.stderr[-2000:]
    assert len(r.stderr.strip().splitlines()) == 1 and not list(tmp_path.iterdir())


def test_the_hider_hides(hider, tmp_path):
    r = run_hidden(hider, ["optuna"], ["-c", "import optuna"], tmp_path, command=[sys.executable])
    assert r.returncode == 1 and "hidden by the test" in r.stderr


def test_the_estimators_need_no_scikit_learn(hider, tmp_path):
    code = ("import sys, numpy as np\nfrom nmfdnn import NMFNetClassifier\n"
            "rng = np.random.default_rng(0); X = rng.random((300, 8)); y = (X[:, 0] > 0.5).astype(int)\n"
            "est = NMFNetClassifier(hidden=(12,), epochs=1, solver_params={'batch_size': 150, 'ae_samples': 150})\n"
            "print(est.fit(X, y).score(X, y) > 0.5, 'sklearn' in sys.modules)")
    r = run_hidden(hider, ["sklearn"], ["-c", code], tmp_path, command=[sys.executable])
    assert r.returncode == 0 and r.stdout.split() == ["True", "False"], r.stderr[-2000:]


def test_every_extra_named_is_in_pyproject():
    tomllib = pytest.importorskip("tomllib")

    from nmfdnn.extras import EXTRAS

    extras = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    for module, (_, extra) in EXTRAS.items():
        assert extra in extras, (module, extra)
