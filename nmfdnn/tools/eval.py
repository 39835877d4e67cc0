"""``nmfdnn eval RUN_DIR [OVERRIDES]``: apply a trained run to a data set and report its error rates."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from ..backend import get_backend
from ..checkpoint import check_weights
from ..config import NON_RESULT_KEYS, compose_config, dtype_name
from ..data import load_dataset
from ..archive import read_config
from ..errors import NmfdnnError
from ..fileio import atomic_write_json, path_problem, short_path
from ..method.network import evaluate
from ..outputs import load_model
from ..record import OVERRIDES, RECORD_DIR, check_override, recorded_overrides


# What eval may change: the data it scores the run on, and how it computes (never the network)
EVAL_KEYS = ("dataset", "backend", "progress")
KEEPS_NETWORK = "eval keeps the run's network and may change its data only (dataset=..., dataset.KEY=..., backend...)"


def _sets_group(overrides: list[str], group: str) -> bool:
    return any(o.split("=", 1)[0].lstrip("+") == group for o in overrides)


def _compose(run_dir: Path, overrides: list[str]):
    """The run's config from its record (else its ``config.yaml``) with ``overrides`` on top; a new
    data set (``dataset=NAME``) drops the run's own ``dataset.*`` keys (they belong to its data set)."""
    new_data = _sets_group(overrides, "dataset")
    if (run_dir / RECORD_DIR / OVERRIDES).is_file():
        recorded = [o for o in recorded_overrides(run_dir)
                    if not (new_data and o.split("=", 1)[0].split(".")[0] == "dataset")]
        return compose_config([*recorded, *overrides], check=False)
    try:
        saved = read_config(run_dir / "config.yaml")
        groups = {"dataset": saved["dataset"]["name"], "solver": saved["solver"]["name"]}
        groups.update({o.split("=", 1)[0]: o.split("=", 1)[1] for o in overrides if o.split("=", 1)[0] in groups})
        if new_data:
            saved = {k: v for k, v in saved.items() if k != "dataset"}
        cfg = compose_config([f"{k}={v}" for k, v in groups.items()], check=False)
        dotted = [o for o in overrides if o.split("=", 1)[0] not in groups]
        return OmegaConf.merge(cfg, saved, OmegaConf.from_dotlist(dotted))
    except NmfdnnError:
        raise
    except Exception as e:  # noqa: BLE001 (a missing or malformed config.yaml)
        raise NmfdnnError(f"{run_dir}: neither a run record ({RECORD_DIR}/{OVERRIDES}) nor a readable config.yaml "
                          f"({type(e).__name__})") from None


def _flat(c) -> dict:
    """A config as ``{dotted key: value}``, the keys of :data:`EVAL_KEYS` and those that never change a
    result (:data:`nmfdnn.config.NON_RESULT_KEYS`) left out; a BP loss under its one name."""
    from ..config.identity import LOSS_NAMES

    out = {}

    def walk(node, prefix):
        for k, v in node.items():
            if isinstance(v, dict) and v:
                walk(v, f"{prefix}{k}.")
            else:
                out[f"{prefix}{k}"] = LOSS_NAMES.get(v, v) if f"{prefix}{k}" == "solver.loss" else v

    walk({k: v for k, v in OmegaConf.to_container(c, resolve=True, enum_to_str=True).items() if k not in EVAL_KEYS},
         "")
    return {k: v for k, v in out.items() if k not in NON_RESULT_KEYS}


def _network_changes(run, cfg) -> list[str]:
    """The keys outside :data:`EVAL_KEYS` whose values differ between the run's config and ``cfg``."""
    a, b = _flat(run), _flat(cfg)
    return [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def compose_run_config(run_dir: Path, overrides: list[str]):
    """The run's config, recomposed from its recorded overrides (checked as data:
    :func:`nmfdnn.record.recorded_overrides`) plus ``overrides`` (e.g. dataset=idx); a run directory
    without a record is composed with its own data set and solver, then given its ``config.yaml``.
    Overrides may change the data (``dataset``, ``dataset.*``) and the backend, never the network: one
    that changes another key (``hidden``, ``conv``, ``activation*``, ``solver.*``, ``dtype``, ...) is
    refused in one line (the weights would be read as another network's)."""
    run_dir = Path(run_dir)
    overrides = [check_override(o, "nmfdnn eval") for o in overrides]
    for group in ("solver", "experiment"):  # a group of network keys: refused before it is composed
        chosen = [o for o in overrides if o.split("=", 1)[0] == group]
        if chosen:
            raise NmfdnnError(f"nmfdnn eval: {chosen[0]} would read {run_dir}'s weights as another network; "
                              f"{KEEPS_NETWORK}")
    cfg = _compose(run_dir, overrides)
    if overrides:
        changed = _network_changes(_compose(run_dir, []), cfg)
        if changed:
            raise NmfdnnError(f"nmfdnn eval: {'; '.join(changed[:3])} would read {run_dir}'s weights as another "
                              f"network; {KEEPS_NETWORK}")
    return cfg


def evaluate_run(run_dir, overrides: list[str] | None = None) -> dict:
    """Error rates (%) of the run's ``model.npz`` on the (possibly overridden) data set, computed by
    the same :func:`nmfdnn.method.network.evaluate` as training, in the run's dtype and backend."""
    run_dir = Path(run_dir)
    problem = path_problem(run_dir / RECORD_DIR / OVERRIDES)
    if problem:
        raise NmfdnnError(f"{short_path(run_dir)}: {problem}")
    model = run_dir / "model.npz"
    if not model.exists() and not model.is_symlink():
        raise NmfdnnError(f"{run_dir} holds no trained model (model.npz missing; did the run finish?)")
    overrides = list(overrides or [])
    cfg = compose_run_config(run_dir, overrides)
    weights, bias = load_model(run_dir)
    data = load_dataset(cfg.dataset)
    bk = get_backend(cfg.backend.name, dtype_name(cfg))
    from ..config.network import build_network
    from ..config.validate import image_shape

    if cfg.get("conv"):
        own = image_shape(_compose(run_dir, []).dataset) if overrides else data.shape
        if own is not None and data.shape is not None and tuple(own) != tuple(data.shape):
            raise NmfdnnError(f"the model takes {' x '.join(map(str, own))} images, data set {data.name} has "
                              f"{' x '.join(map(str, data.shape))} ones")
        n_in = data.n_in
    else:
        n_in = weights[0].shape[1] - int(bias)
    if data.n_in != n_in:
        raise NmfdnnError(f"the model takes {n_in} features, data set {data.name} has {data.n_in}")
    net = build_network(cfg, data.n_in, data.shape, data.n_classes)
    kind = {} if not overrides else {
        "mismatch": f"does not fit data set {data.name} ({data.n_in} features, {data.n_classes} classes)",
        "mismatch_remedy": "evaluate it on data of the run's own shape and classes"}
    check_weights(weights, net.shapes, str(model), **kind)
    Ws = [bk.asarray(W) for W in weights]
    train_err, obj = evaluate(bk, net, Ws, bk.xp.asfortranarray(bk.asarray(data.train.X)), data.train.labels)
    test_err, _ = evaluate(bk, net, Ws, bk.asarray(data.test.X), data.test.labels)
    out = {"run_dir": str(run_dir), "dataset": data.name, "overrides": overrides,
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
