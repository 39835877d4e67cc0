"""Tiny nets of every preset class, trained through :func:`nmfdnn.train.fit`, and the SHA-256 digest of
every final weight array and of the evaluation history (what ``tests/test_network.py`` compares).

Run against another checkout of the package to record its digests, e.g. at commit C::

    git archive C | tar -x -C /tmp/c
    PYTHONPATH=/tmp/c .venv/bin/python tests/helpers/network_digests.py --commit C tests/network_digests.json

The cases are config overrides only (the keys and their meaning do not change), so the same file
trains them with any version of the code.
"""

from __future__ import annotations

import hashlib
import json
import sys

DENSE = ["dataset=synthetic", "dataset.n_train=400", "dataset.n_test=100", "dataset.n_features=20",
         "hidden=[16,8]", "epochs=2", "progress=false", "eval_train=true"]
NMF = ["solver=nmf", "solver.batch_size=200", "solver.ae_samples=200", "solver.ae_iters=2"]
BP = ["solver=bp", "solver.batch_size=100", "solver.ae_samples=200", "solver.ae_epochs=1"]
IMAGE = ["dataset.image=[1,8,8]", "conv=[{channels:4,kernel:3,pool:2}]", "hidden=[8]"]
TWO_CONV = ["dataset.image=[2,8,8]", "conv=[{channels:3,kernel:3,padding:1},{channels:4,kernel:3,pool:2}]",
            "hidden=[8]"]
ACTIVATIONS = {"relu": ["activation=relu"], "leaky_relu": ["activation=leaky_relu", "activation_slope=0.1"],
               "capped_relu": ["activation=capped_relu", "activation_cap=0.02"],
               "softplus": ["activation=softplus", "activation_beta=4"]}
GN = ["solver.filter_step=gauss_newton", "solver.filter_cg_iters=3"]


def _cases() -> dict[str, list[str]]:
    cases = {}
    for bias in ("false", "true"):
        b = [f"solver.bias={bias}"]
        for name, act in ACTIVATIONS.items():
            cases[f"nmf-dense-{name}-bias={bias}"] = DENSE + NMF + act + b
            cases[f"bp-dense-{name}-bias={bias}"] = DENSE + BP + act + b
            cases[f"nmf-conv-{name}-bias={bias}"] = DENSE + NMF + IMAGE + act + b
            cases[f"bp-conv-{name}-bias={bias}"] = DENSE + BP + IMAGE + act + b
        cases[f"nmf-conv-gauss_newton-bias={bias}"] = DENSE + NMF + IMAGE + GN + b
        cases[f"nmf-conv-gauss_newton-output-bias={bias}"] = DENSE + NMF + IMAGE + GN + [
            "solver.filter_target=output"] + b
        cases[f"nmf-conv-gauss_newton-before-bias={bias}"] = DENSE + NMF + TWO_CONV + GN + [
            "solver.filter_order=before"] + b
        cases[f"nmf-conv-memory-bias={bias}"] = DENSE + NMF + IMAGE + ["solver.memory=0.9"] + b
        cases[f"nmf-dense-memory-bias={bias}"] = DENSE + NMF + ["solver.memory=0.9"] + b
        cases[f"nmf-conv-freeze-bias={bias}"] = DENSE + NMF + IMAGE + ["solver.freeze_conv=true"] + b
        cases[f"bp-conv-freeze-bias={bias}"] = DENSE + BP + IMAGE + ["solver.freeze_conv=true"] + b
        cases[f"nmf-two-conv-bias={bias}"] = DENSE + NMF + TWO_CONV + ["solver.filter_trace=true"] + b
        cases[f"bp-two-conv-bias={bias}"] = DENSE + BP + TWO_CONV + b
    cases["nmf-conv-whiten"] = DENSE + NMF + IMAGE + ["solver.ae_whiten=0.1", "solver.ae_patches=300"]
    cases["nmf-conv-leaky_relu-gauss_newton"] = DENSE + NMF + IMAGE + GN + ACTIVATIONS["leaky_relu"]
    cases["nmf-dense-l1"] = DENSE + NMF + ["solver.l1_weights=1e-4", "solver.l1_activations=1e-3", "solver.bias=true"]
    cases["nmf-dense-leaky_relu-l1"] = DENSE + NMF + ACTIVATIONS["leaky_relu"] + ["solver.l1_activations=1e-3"]
    cases["nmf-dense-safeguard"] = DENSE + NMF + ["solver.safeguard=true", "solver.omega=1.5"]
    cases["nmf-dense-regularised"] = DENSE + NMF + ["solver.alpha=0.1", "solver.beta=0.1", "solver.lam=0.01",
                                                    "solver.layer_omega=[0.5,1.0]", "solver.ae_normalize=true"]
    cases["nmf-dense-float32"] = DENSE + NMF + ["dtype=float32", "solver.bias=true"]
    cases["nmf-conv-float32"] = DENSE + NMF + IMAGE + ["dtype=float32"]
    cases["bp-dense-xent-no-ae"] = DENSE + BP + ["solver.loss=cross_entropy", "solver.ae_epochs=0"]
    return cases


CASES = _cases()


def sha(a) -> str:
    import numpy as np

    a = np.ascontiguousarray(a)
    return hashlib.sha256(f"{a.dtype.str}{a.shape}".encode() + a.tobytes()).hexdigest()


def digests(overrides: list[str]) -> dict:
    """Train the net of ``overrides`` (one thread) and return the digests of its weights ``W1 ...``
    and of its history's errors and objectives (the evaluation's forward pass)."""
    import numpy as np

    from nmfdnn.backend import blas_threads
    from nmfdnn.config import compose_config
    from nmfdnn.data import load_dataset
    from nmfdnn.train import fit

    cfg = compose_config(overrides, check=False)
    data = load_dataset(cfg.dataset)
    with blas_threads(1):
        result = fit(cfg, data, listeners=[])
    out = {f"W{i + 1}": sha(W) for i, W in enumerate(result.weights)}
    keys = ("train_error", "test_error", "objective")
    out["history"] = sha(np.asarray([[row[k] for k in keys] for row in result.history], dtype=np.float64))
    return out


def main(argv: list[str]) -> int:
    commit = None
    if argv[:1] == ["--commit"]:
        commit, argv = argv[1], argv[2:]
    out = {"commit": commit, "cases": {name: digests(ov) for name, ov in CASES.items()}}
    with open(argv[0], "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
