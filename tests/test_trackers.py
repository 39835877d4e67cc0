"""The trackers of ``logger=`` against the real libraries: MLflow read back with ``MlflowClient``,
TensorBoard with its event reader; a failing tracker is one warning line and an unharmed run."""

import json
import signal
import sys

import pytest
from mlflow.tracking import MlflowClient
from tensorboard.backend.event_processing import event_accumulator

from util import cli

TINY = ["dataset=synthetic", "hidden=[20]", "epochs=2", "solver.batch_size=300", "solver.ae_samples=300",
        "solver.ae_iters=1", "progress=false"]
METRICS = ("train_error", "test_error", "objective", "epoch_seconds", "seconds")


def store(root):
    """The default local store of runs launched in ``root``: ``root/mlruns/mlflow.db``."""
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlruns' / 'mlflow.db'}")
    return client, client.get_experiment_by_name("nmfdnn").experiment_id


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """A 2-job sweep (seed=0,1) with both trackers, launched in a fresh folder (its default MLflow store)."""
    root = tmp_path_factory.mktemp("tracked")
    code, _, err = cli(["train", "-m", *TINY, "seed=0,1", "logger=[mlflow,tensorboard]",
                        f"hydra.sweep.dir={root / 'sweep'}"], cwd=root)
    assert code == 0, err
    return root


def test_a_sweep_is_one_parent_mlflow_run_with_a_child_per_job(sweep):
    client, exp = store(sweep)
    parent_id = json.loads((sweep / "sweep" / "mlflow.json").read_text())["run_id"]
    parent = client.get_run(parent_id)
    assert parent.info.status == "FINISHED"
    children = client.search_runs([exp], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'")
    assert len(children) == 2
    assert [r.info.run_id for r in client.search_runs([exp], filter_string="tags.`nmfdnn.sweep_dir` LIKE '%'")] == [parent_id]
    for job in ("0", "1"):
        run_id = json.loads((sweep / "sweep" / job / "mlflow.json").read_text())["run_id"]
        run = client.get_run(run_id)
        assert run.info.status == "FINISHED" and run.data.tags["mlflow.parentRunId"] == parent_id
        assert run.data.tags["net"] == "20" and run.data.tags["solver"] == "nmf"
        assert run.data.params["seed"] == job and run.data.params["solver.batch_size"] == "300"
        assert run.data.params["hidden"] == "[20]"
        history = json.loads((sweep / "sweep" / job / "metrics.json").read_text())["history"]
        for key in METRICS:
            logged = client.get_metric_history(run_id, key)
            assert [(m.step, m.value) for m in logged] == [(r["epoch"], r[key]) for r in history]
        names = {a.path for a in client.list_artifacts(run_id)}
        assert {"metrics.json", "history.csv", "model.npz", "config.yaml", "train.log", ".hydra",
                "tensorboard"} <= names and "checkpoint.npz" not in names


def test_the_same_sweep_resumed_continues_its_parent_run(sweep):
    parent_id = json.loads((sweep / "sweep" / "mlflow.json").read_text())["run_id"]
    code, _, err = cli(["train", "-m", *TINY, "seed=0,1", "logger=[mlflow,tensorboard]", "resume=true",
                        f"hydra.sweep.dir={sweep / 'sweep'}"], cwd=sweep)
    assert code == 0, err
    client, exp = store(sweep)
    assert json.loads((sweep / "sweep" / "mlflow.json").read_text())["run_id"] == parent_id
    assert [r.info.run_id for r in client.search_runs([exp], filter_string="tags.`nmfdnn.sweep_dir` LIKE '%'")] == [parent_id]
    assert len(client.search_runs([exp], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'")) == 2
    assert client.get_run(parent_id).info.status == "FINISHED"


def test_tensorboard_has_the_scalars_and_the_hyper_parameters(sweep):
    from tensorboard.plugins.hparams import plugin_data_pb2

    job = sweep / "sweep" / "1"
    acc = event_accumulator.EventAccumulator(str(job / "tensorboard"))
    acc.Reload()
    history = json.loads((job / "metrics.json").read_text())["history"]
    for key in METRICS:
        assert [(e.step, pytest.approx(e.value)) for e in acc.Scalars(key)] == [(r["epoch"], r[key]) for r in history]
    content = acc.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    assert start.hparams["seed"].number_value == 1 and start.hparams["hidden"].string_value == "[20]"
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    assert {m.name.tag for m in experiment.metric_infos} >= set(METRICS)


def test_a_resumed_run_continues_its_mlflow_run(tmp_path, monkeypatch, sweep):
    """Interrupted after epoch 1, then ``nmfdnn resume``: one MLflow run, every epoch logged once (in the
    sweep's store, launched from the same folder: one database set up per module)."""
    import nmfdnn.train as train_mod

    real = train_mod._FitHooks.epoch_done

    def stop_after_first_epoch(self, epoch, Ws, seconds):
        real(self, epoch, Ws, seconds)
        if epoch == 1:
            signal.raise_signal(signal.SIGTERM)

    monkeypatch.setattr(train_mod._FitHooks, "epoch_done", stop_after_first_epoch)
    code, _, err = cli(["train", *TINY, "logger=mlflow", f"hydra.run.dir={tmp_path / 'run'}"], cwd=sweep)
    assert code == 130, err
    client, exp = store(sweep)
    mine = f"tags.`nmfdnn.run_dir` = '{tmp_path / 'run'}'"
    (first,) = client.search_runs([exp], filter_string=mine)
    assert first.info.status == "KILLED"
    monkeypatch.setattr(train_mod._FitHooks, "epoch_done", real)
    code, _, err = cli(["resume", tmp_path / "run"], cwd=sweep)
    assert code == 0, err
    (run,) = client.search_runs([exp], filter_string=mine)
    assert run.info.run_id == first.info.run_id and run.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "test_error")] == [0, 1, 2]


def test_an_unreachable_tracking_server_is_one_warning_and_the_run_is_unharmed(tmp_path, monkeypatch, sweep):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    run = tmp_path / "run"
    code, _, err = cli(["train", *TINY, "seed=0", "logger=mlflow", "logger.mlflow.tracking_uri=http://127.0.0.1:9",
                        f"hydra.run.dir={run}"], cwd=tmp_path)
    assert code == 0, err
    warnings = [ln for ln in (run / "train.log").read_text().splitlines() if "logger=mlflow" in ln]
    assert len(warnings) == 1 and "tracking is off" in warnings[0]
    assert (run / "model.npz").read_bytes() == (sweep / "sweep" / "0" / "model.npz").read_bytes()
    assert not (run / "mlflow.json").exists()


def test_a_missing_extra_is_one_warning_each_and_the_run_is_unharmed(tmp_path, monkeypatch, sweep):
    for module in ("mlflow", "tensorboardX"):
        monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    run = tmp_path / "run"
    code, _, err = cli(["train", *TINY, "seed=0", "logger=[mlflow,tensorboard]", f"hydra.run.dir={run}"], cwd=tmp_path)
    assert code == 0, err
    log = (run / "train.log").read_text()
    assert log.count("the mlflow package is not installed (pip install 'nmfdnn[mlflow]')") == 1
    assert log.count("the tensorboardX package is not installed (pip install 'nmfdnn[tensorboard]')") == 1
    assert (run / "model.npz").read_bytes() == (sweep / "sweep" / "0" / "model.npz").read_bytes()
    assert not (tmp_path / "mlruns").exists() and not (run / "tensorboard").exists()
