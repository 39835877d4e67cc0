"""``nmfdnn eval RUN_DIR [OVERRIDES]``: apply a trained run to a data set and report its error rates."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from ..backend import get_backend
from ..checkpoint import check_weights
from ..config import compose_config, dtype_name
from ..data import load_dataset
from ..archive import read_config
from ..errors import NmfdnnError
from ..fileio import atomic_write_json
from ..method.network import evaluate
from ..outputs import load_model
from ..record import OVERRIDES, RECORD_DIR, check_override, recorded_overrides


def compose_run_config(run_dir: Path, overrides: list[str]):
    """The run's config, recomposed from its recorded overrides (checked as data:
    :func:`nmfdnn.record.recorded_overrides`) plus ``overrides`` (e.g. dataset=idx); a run directory
    without a record is composed with its own data set and solver, then given its ``config.yaml``."""
    overrides = [check_override(o, "nmfdnn eval") for o in overrides]
    if (run_dir / RECORD_DIR / OVERRIDES).is_file():
        return compose_config([*recorded_overrides(run_dir), *overrides], check=False)
    try:
        saved = OmegaConf.create(read_config(run_dir / "config.yaml"))
        groups = [f"dataset={saved.dataset.name}", f"solver={saved.solver.name}"]
        cfg = compose_config(groups, check=False)
        return OmegaConf.merge(cfg, saved, OmegaConf.from_dotlist(overrides))
    except NmfdnnError:
        raise
    except Exception as e:  # noqa: BLE001 (a missing or malformed config.yaml)
        raise NmfdnnError(f"{run_dir}: neither a run record ({RECORD_DIR}/{OVERRIDES}) nor a readable config.yaml "
                          f"({type(e).__name__})") from None


def evaluate_run(run_dir, overrides: list[str] | None = None) -> dict:
    """Error rates (%) of the run's ``model.npz`` on the (possibly overridden) data set, computed by
    the same :func:`nmfdnn.method.network.evaluate` as training, in the run's dtype and backend."""
    run_dir = Path(run_dir)
    if not (run_dir / "model.npz").is_file():
        raise NmfdnnError(f"{run_dir} holds no trained model (model.npz missing; did the run finish?)")
    cfg = compose_run_config(run_dir, list(overrides or []))
    weights, bias = load_model(run_dir)
    data = load_dataset(cfg.dataset)
    bk = get_backend(cfg.backend.name, dtype_name(cfg))
    n_in = weights[0].shape[1] - int(bias) if not cfg.get("conv") else data.n_in
    if data.n_in != n_in:
        raise NmfdnnError(f"the model takes {n_in} features, data set {data.name} has {data.n_in}")
    from ..method.layers import weight_shapes
    from ..trainers import custom_layers, network_layers

    layers = network_layers(cfg, data.n_in, data.shape)
    check_weights(weights, n_in, list(cfg.hidden), data.n_classes, bias, str(run_dir / "model.npz"),
                  weight_shapes(layers, data.n_classes, bias))
    layers = custom_layers(layers)
    Ws = [bk.asarray(W) for W in weights]
    train_err, obj = evaluate(bk, Ws, bk.xp.asfortranarray(bk.asarray(data.train.X)), data.train.labels, bias,
                              layers=layers)
    test_err, _ = evaluate(bk, Ws, bk.asarray(data.test.X), data.test.labels, bias, layers=layers)
    out = {"run_dir": str(run_dir), "dataset": data.name, "overrides": list(overrides or []),
           "train_error": train_err, "test_error": test_err, "objective": obj,
           "n_train": data.train.m, "n_test": data.test.m}
    atomic_write_json(run_dir / "eval.json", out)
    return out


def build_parser():
    from . import Parser

    ap = Parser(prog="nmfdnn eval", description="Error rates of a trained run on its data set, or on another "
                "one given by overrides (e.g. dataset=idx dataset.test_images=...); writes RUN_DIR/eval.json.")
    ap.add_argument("run_dir", metavar="RUN_DIR", help="a finished run directory (with model.npz)")
    ap.add_argument("overrides", nargs="*", metavar="OVERRIDE", help="config overrides, KEY=VALUE")
    return ap


def main(argv: list[str]) -> int:
    from rich.console import Console

    a = build_parser().parse_args(argv)
    r = evaluate_run(Path(a.run_dir), a.overrides)
    Console().print(f"{r['dataset']}: train error {r['train_error']:.2f} %  test error {r['test_error']:.2f} %  "
                    f"({r['n_train']} / {r['n_test']} samples); written to {Path(a.run_dir) / 'eval.json'}")
    return 0
