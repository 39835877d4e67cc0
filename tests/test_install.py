"""A non-editable install must find its configs (Hydra's packaged-app problem), tested for real:
build a wheel, install it into a fresh directory, and run the console script from elsewhere."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent


def test_wheel_install_finds_configs(tmp_path):
    wheels = tmp_path / "wheels"
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                        "-w", str(wheels), str(REPO)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "Warning" not in r.stdout + r.stderr  # e.g. setuptools' BuildBackendWarning about conf/ folders
    (wheel,) = wheels.glob("nmfdnn-*.whl")
    import zipfile

    names = zipfile.ZipFile(wheel).namelist()
    assert "nmfdnn/conf/train.yaml" in names and "nmfdnn/conf/solver/nmf.yaml" in names
    target = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = dict(os.environ, PYTHONPATH=str(target))
    env.pop("HYDRA_FULL_ERROR", None)
    r = subprocess.run([sys.executable, "-c", "import nmfdnn.config as c; print(c.__file__); print(c.conf_dir())"],
                       cwd=work, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    module, conf = r.stdout.splitlines()
    assert module.startswith(str(target)) and conf == str(target / "nmfdnn" / "conf")
    script = target / "bin" / "nmfdnn"  # the console script pip generated
    r = subprocess.run([str(script), "train", "dataset=synthetic", "hidden=[8]", "epochs=1", "solver.batch_size=300",
                        "solver.ae_samples=300", "solver.ae_iters=1", "progress=false"],
                       cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert list((work / "outputs" / "train").glob("*/*/metrics.json"))
