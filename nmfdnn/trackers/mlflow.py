"""``logger=mlflow``: the run in an MLflow tracking store (pip install 'nmfdnn[mlflow]').

Parameters: the flattened config; metrics per epoch (step = epoch, 0 after pre-training): the
train / validation / test error, the objective, the epoch's and the run's training seconds; at the
end the phase seconds and the run's files as artifacts; tags ``net``, ``solver`` and ``dataset``.

The MLflow run's id is kept in the run folder (``mlflow.json``): a resumed run (``resume=true``,
``nmfdnn resume``) continues that MLflow run, never a second one. A sweep (``-m``) is one parent run
(:class:`SweepParent`, a Hydra callback that ``conf/logger/mlflow.yaml`` installs; its id in the
sweep folder's ``mlflow.json``) with one child run per job (tag ``mlflow.parentRunId``); the same
sweep resumed continues the same parent.

``tracking_uri: null`` is ``$MLFLOW_TRACKING_URI`` if set, else the local store ``mlruns/`` in the
working directory, beside ``outputs/``: the SQLite database ``mlruns/mlflow.db`` (MLflow's plain
file store is in maintenance mode) with the artifacts in ``mlruns/artifacts``; browse it with
``mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db``.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

from omegaconf import OmegaConf

from .base import METRICS, Tracker, flat_params, log, warning_line

RUN_ID_FILE = "mlflow.json"  # in a run folder: its MLflow run; in a sweep folder: the parent run
LOCAL_STORE = "mlruns"
SKIPPED = {".lock", "checkpoint.npz", RUN_ID_FILE}  # not artifacts: the lock, the resume state, this id


def tracking_uri(settings) -> tuple[str, str | None]:
    """``(tracking URI, artifact location for a new experiment or None for the store's default)``."""
    uri = settings.get("tracking_uri") or os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return str(uri), None
    root = Path(LOCAL_STORE).absolute()
    root.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{root / 'mlflow.db'}", (root / "artifacts").as_uri()


def _client(settings):
    """An MLflow client of the store ``settings`` name and the id of its experiment (created if new)."""
    from mlflow.tracking import MlflowClient

    uri, artifacts = tracking_uri(settings)
    client = MlflowClient(tracking_uri=uri)
    name = str(settings.get("experiment_name") or "nmfdnn")
    exp = client.get_experiment_by_name(name)
    exp_id = exp.experiment_id if exp is not None else client.create_experiment(name, artifact_location=artifacts)
    return client, exp_id, uri


def _read_id(folder: Path, uri: str) -> str | None:
    """The run id kept in ``folder/mlflow.json`` if it was made in the store ``uri``."""
    try:
        saved = json.loads((folder / RUN_ID_FILE).read_text())
    except (OSError, ValueError):
        return None
    return saved.get("run_id") if isinstance(saved, dict) and saved.get("tracking_uri") == uri else None


def _write_id(folder: Path, uri: str, exp_id: str, run_id: str) -> None:
    from ..fileio import atomic_write_json

    atomic_write_json(folder / RUN_ID_FILE, {"tracking_uri": uri, "experiment_id": exp_id, "run_id": run_id})


def _continued(client, run_id: str | None):
    """The stored run of ``run_id`` if the store still has it (not deleted), else None."""
    if run_id is None:
        return None
    try:
        run = client.get_run(run_id)
    except Exception:  # noqa: BLE001 (gone from the store: a new run)
        return None
    return run if run.info.lifecycle_stage == "active" else None


def _sweep():
    """``(sweep folder, the job's overrides)`` of a job of a multirun, else ``(None, None)``."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return None, None
    hc = HydraConfig.get()
    if hc.mode != RunMode.MULTIRUN:
        return None, None
    return Path(hc.sweep.dir), " ".join(hc.overrides.task)


class MLflowTracker(Tracker):
    name = "mlflow"

    def start(self, run):
        import mlflow  # noqa: F401 (the optional extra: a missing one is the warning line)
        from mlflow.entities import Param, RunTag

        from ..config.identity import dtype_name, net_name
        from ..train import config_dict

        client, exp_id, uri = _client(self.settings)
        self.client, self.run_dir = client, run.run_dir
        sweep_dir, job = _sweep()
        parent = _read_id(sweep_dir, uri) if sweep_dir is not None else None
        cfg = run.config
        continued = _continued(client, _read_id(run.run_dir, uri)) if cfg.get("resume", False) and run.run_dir else None
        if continued is not None:
            self.run_id = continued.info.run_id
            client.update_run(self.run_id, status="RUNNING")
            known = continued.data.params
        else:
            name = self.settings.get("run_name") or job or (run.run_dir.name if run.run_dir else None)
            tags = {"net": net_name(config_dict(cfg)), "solver": str(cfg.solver.name), "dataset": str(cfg.dataset.name),
                    "dtype": dtype_name(cfg)}
            if run.run_dir is not None:
                tags["nmfdnn.run_dir"] = str(Path(run.run_dir).absolute())
            if parent is not None:
                tags["mlflow.parentRunId"] = parent
            self.run_id = client.create_run(exp_id, tags=tags, run_name=name).info.run_id
            known = {}
            if run.run_dir is not None:
                _write_id(Path(run.run_dir), uri, exp_id, self.run_id)
        params = [Param(k, str(v)[:6000]) for k, v in flat_params(cfg).items() if k not in known]
        for i in range(0, len(params), 100):  # MLflow takes at most 100 parameters a call
            client.log_batch(self.run_id, params=params[i:i + 100])
        if continued is not None:
            client.log_batch(self.run_id, tags=[RunTag("nmfdnn.resumed_at_epoch", str(run.start_epoch))])

    def epoch(self, row):
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(k, float(row[k]), now, int(row["epoch"])) for k in METRICS
                   if row.get(k) is not None and math.isfinite(row[k])]
        self.client.log_batch(self.run_id, metrics=metrics)

    def end(self, result):
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        last = int(result.history[-1]["epoch"]) if result.history else 0
        totals = {"pretrain_seconds": result.pretrain_seconds, "finetune_seconds": result.finetune_seconds,
                  "eval_seconds": result.eval_seconds, "total_seconds": result.info.get("total_seconds")}
        self.client.log_batch(self.run_id, metrics=[Metric(k, float(v), now, last) for k, v in totals.items()
                                                    if v is not None])
        if self.settings.get("log_artifacts", True) and self.run_dir is not None:
            root = Path(self.run_dir)
            for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name not in SKIPPED):
                rel = path.relative_to(root).parent.as_posix()
                self.client.log_artifact(self.run_id, str(path), None if rel == "." else rel)
        self.client.set_terminated(self.run_id, "FINISHED")

    def failed(self, error):
        from ..errors import Interrupted

        stopped = isinstance(error, (Interrupted, KeyboardInterrupt))
        self.client.set_terminated(self.run_id, "KILLED" if stopped else "FAILED")


try:  # the callback's base class; Hydra is a dependency, the callback runs only under logger=mlflow
    from hydra.experimental.callback import Callback
except ImportError:  # pragma: no cover
    Callback = object


class SweepParent(Callback):
    """The parent MLflow run of a sweep (a Hydra callback): created before the first job (its id in
    the sweep folder's ``mlflow.json``, which each job's run reads), or continued when the same sweep
    is run again; finished after the last job. A failure is one warning line; the jobs then run
    without a parent. It keeps plain values only: a launcher may pickle it to its workers."""

    run_id = None

    def on_multirun_start(self, config, **kwargs):  # noqa: ARG002 (Hydra's callback interface)
        try:
            import mlflow  # noqa: F401

            settings = config.logger.mlflow
            client, exp_id, uri = _client(settings)
            sweep_dir = Path(str(config.hydra.sweep.dir))
            sweep_dir.mkdir(parents=True, exist_ok=True)
            self.settings = OmegaConf.to_container(settings)
            continued = _continued(client, _read_id(sweep_dir, uri))
            if continued is not None:
                self.run_id = continued.info.run_id
                client.update_run(self.run_id, status="RUNNING")
                return
            overrides = " ".join(config.hydra.overrides.task)
            run_id = client.create_run(exp_id, run_name=settings.get("run_name") or sweep_dir.name,
                                       tags={"nmfdnn.sweep_dir": str(sweep_dir.absolute()),
                                             "nmfdnn.sweep": overrides}).info.run_id
            _write_id(sweep_dir, uri, exp_id, run_id)
            self.run_id = run_id
        except Exception as e:  # noqa: BLE001 (the sweep goes on without a parent run)
            self.run_id = None
            log.warning("%s", warning_line("mlflow", e))

    def on_multirun_end(self, config, **kwargs):  # noqa: ARG002
        if self.run_id is None:
            return
        try:
            client, _, _ = _client(self.settings)
            client.set_terminated(self.run_id, "FINISHED")
        except Exception as e:  # noqa: BLE001
            log.warning("%s", warning_line("mlflow", e))
