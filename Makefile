# nmfdnn: `make train` installs into .venv, fetches MNIST and trains the default network;
# `make test` passes the tests. `make help` lists every target.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
NMFDNN := $(VENV)/bin/nmfdnn
ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install train fetch results readme tune lint test test-fast slurm-up slurm-down clean table1 table1-paper table1-quick fig1 kill-resume bench bench-tta bench-gpu scaling

help: ## list the targets
	@grep -E '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "} {printf "  %-12s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --quiet --upgrade pip
	$(PY) -m pip install --quiet --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed ## create .venv and install nmfdnn (editable) with the test tools

fetch: install ## download, verify and cache MNIST
	$(NMFDNN) fetch mnist

train: install ## train the default configuration on MNIST (extra overrides: make train ARGS='hidden=[500]')
	$(NMFDNN) train $(ARGS)

lint: install ## ruff: unused imports and arguments, undefined names (pyproject.toml [tool.ruff])
	$(VENV)/bin/ruff check nmfdnn tests

test: install lint ## lint, then the whole test suite (includes a real-MNIST end-to-end run and an install test)
	$(PY) -m pytest -q

test-fast: install lint ## lint, then unit and CLI tests only (skips tests marked slow)
	$(PY) -m pytest -q -m "not slow"

slurm-up: install ## a one-node SLURM cluster on this machine (installs slurm and munge with apt-get if missing; state in .slurm/)
	$(PY) tests/helpers/slurm_cluster.py up .slurm

slurm-down: ## stop the daemons slurm-up started (by their pids)
	$(PY) tests/helpers/slurm_cluster.py down .slurm

clean: ## remove the virtual environment and caches (not outputs/ nor the data cache)
	rm -rf $(VENV) .pytest_cache build *.egg-info

# The paper's Table 1: 4 networks x {nmf, bp} x 10 seeds x 10 epochs on full MNIST, each row with its
# preset (conf/experiment/table1_nmf.yaml: float64, the settings chosen on validation data by make tune
# for [1000,500]; table1_nmf_deep.yaml: [2000,1500,1000,500], the shipped solver defaults, chosen on
# validation data for that network (outputs/tune/deep_screen); table1_bp.yaml: the paper's Adam setting
# in float32, as TensorFlow ran it, for [2000,1500,1000,500]; table1_bp_shallow.yaml: the same with
# one autoencoder epoch and a decaying rate, chosen on validation data, for the three other networks).
# Each run has a deterministic directory (its overrides) under outputs/table1/, and resume=true skips
# finished runs (metrics.json present) and continues killed ones, so the committed runs are never rerun. TABLE1_PRESETS and TABLE1_NETS_<preset> narrow it.
TABLE1_SEEDS ?= 0,1,2,3,4,5,6,7,8,9
TABLE1_PRESETS ?= nmf nmf_deep bp_shallow bp
TABLE1_NETS_nmf ?= [500],[1000,500],[1500,1000,500]
TABLE1_NETS_nmf_deep ?= [2000,1500,1000,500]
TABLE1_NETS_bp_shallow ?= [500],[1000,500],[1500,1000,500]
TABLE1_NETS_bp ?= [2000,1500,1000,500]
FIG1_PRESETS ?= nmf bp_shallow
TABLE1_QUICK = solver=nmf,bp hidden=[500],[1000,500] seed=0,1,2 epochs=2 dataset.train_subset=10000
# LAUNCHER=slurm (or parallel) hands the sweeps to Hydra's submitit (joblib) launcher; PARTITION=...
# picks the SLURM partition, e.g. `make table1 LAUNCHER=slurm PARTITION=cpu`.
LAUNCHER ?=
PARTITION ?=
SWEEP_OPTS = resume=true progress=false 'hydra.sweep.subdir=$${hydra.job.override_dirname}' \
	$(if $(LAUNCHER),hydra/launcher=$(LAUNCHER)) $(if $(PARTITION),hydra.launcher.partition=$(PARTITION))

table1: install ## Table 1: 4 networks x {nmf, bp} x 10 seeds, 10 epochs (many hours on 2 cores; resumable, finished runs skipped), then the report
	@echo "Table 1: 80 runs of 10 epochs on full MNIST; finished runs under outputs/table1 are skipped."
	$(foreach p,$(TABLE1_PRESETS),$(NMFDNN) train -m experiment=table1_$(p) hidden=$(TABLE1_NETS_$(p)) seed=$(TABLE1_SEEDS) \
	  $(SWEEP_OPTS) hydra.sweep.dir=outputs/table1 && ) true
	$(NMFDNN) report outputs/table1 --compare paper-table1 --out outputs/table1

table1-paper: install ## the paper's own setting (experiment=paper) for [500] and [1000,500], 3 seeds, beside Table 1
	$(NMFDNN) train -m experiment=paper hidden=[500],[1000,500] seed=0,1,2 $(SWEEP_OPTS) hydra.sweep.dir=outputs/table1-paper
	$(NMFDNN) report outputs/table1-paper --compare paper-table1 --out outputs/table1-paper

table1-quick: install ## Table 1 reduced ([500],[1000,500] x 3 seeds x 2 epochs, 10k samples), then the comparison
	$(NMFDNN) train -m $(TABLE1_QUICK) $(SWEEP_OPTS) hydra.sweep.dir=outputs/table1-quick
	$(NMFDNN) report outputs/table1-quick --compare paper-table1

fig1: install ## Figure 1: NMF vs BP, [1000,500], mean over the 10 seeds of Table 1's runs (finished runs skipped); PNG + SVG
	for p in $(FIG1_PRESETS); do $(NMFDNN) train -m experiment=table1_$$p hidden=[1000,500] seed=$(TABLE1_SEEDS) \
	  $(SWEEP_OPTS) hydra.sweep.dir=outputs/table1 || exit 1; done
	@if $(NMFDNN) fetch cifar10 > /dev/null 2>&1; then \
	  $(NMFDNN) train -m experiment=paper_cifar10,paper_bp_cifar10 hidden=[1000,500] $(SWEEP_OPTS) \
	    hydra.sweep.dir=outputs/fig1/cifar10; \
	else echo "CIFAR-10 cannot be fetched here (no network to its URL): Figure 1 shows MNIST alone"; fi
	$(NMFDNN) plot outputs/table1/*,hidden=\[1000,500\],seed=* $(wildcard outputs/fig1/cifar10) --out outputs/fig1

kill-resume: install ## SIGKILL runs and whole sweeps at random points, resume, compare with uninterrupted ones
	$(PY) tests/helpers/kill_resume.py --trials 5 --solver nmf
	$(PY) tests/helpers/kill_resume.py --trials 3 --solver bp
	$(PY) tests/helpers/kill_resume.py --trials 3 --solver nmf --sweep

results: install ## regenerate outputs/results/ (defaults and mixed precision runs + reports; bench float64/float32 of [1000,500] and the deepest net)
	$(NMFDNN) train -m hidden=[500],[1000,500] progress=false resume=true hydra.sweep.dir=outputs/results/defaults \
	  'hydra.sweep.subdir=$${hydra.job.override_dirname}'
	$(NMFDNN) report outputs/results/defaults --compare paper-table1
	$(NMFDNN) train -m dtype=float32 hidden=[500],[1000,500] seed=0 progress=false resume=true \
	  hydra.sweep.dir=outputs/results/mixed 'hydra.sweep.subdir=$${hydra.job.override_dirname}'
	$(NMFDNN) report outputs/results/mixed --compare paper-table1
	rm -rf outputs/results/bench outputs/results/bench-deep
	for dt in float64 float32; do $(NMFDNN) bench --out outputs/results/bench/$$dt dataset=mnist hidden=[1000,500] dtype=$$dt || exit 1; done
	$(NMFDNN) bench --table outputs/results/bench > outputs/results/bench/bench.md
	for dt in float64 float32; do $(NMFDNN) bench --out outputs/results/bench-deep/$$dt dataset=mnist hidden=[2000,1500,1000,500] \
	  dtype=$$dt || exit 1; done
	$(NMFDNN) bench --table outputs/results/bench-deep > outputs/results/bench-deep/bench.md

readme: install ## refresh the README's generated blocks (<!-- generated from PATH -->) from the committed reports
	$(PY) -m nmfdnn.tools.embed README.md

TRIALS ?= 16
tune: install ## hyper-parameter search of the regularised NMF method on validation data (TRIALS=16 trials of [1000,500]; resumable), then the best trial
	$(NMFDNN) train -m +hparams_search=nmf_optuna hidden=[1000,500] hydra.sweeper.n_trials=$(TRIALS) \
	  hydra.sweep.dir=outputs/tune/nmf_optuna
	$(NMFDNN) report outputs/tune/nmf_optuna
	cat outputs/tune/nmf_optuna/optimization_results.yaml

bench: install ## GEMM rate and a 1-epoch [1000,500] MNIST run: seconds and GFLOP/s per phase (bench.json)
	$(NMFDNN) bench dataset=mnist hidden=[1000,500] dtype=float64
	$(NMFDNN) bench dataset=mnist hidden=[1000,500] dtype=float32

bench-tta: install ## time to test error < 2.0 and < 1.6 % on MNIST [1000,500]: nmf float32/float64, bp float32, PyTorch (mse, xent); 3 interleaved rounds (outputs/results/tta: tta.json, tta.md)
	$(PY) -m pip install --quiet --quiet -e '.[bench]'
	$(NMFDNN) bench --tta --repeats 3 --out outputs/results/tta dataset=mnist hidden=[1000,500]

scaling: install ## epoch time and peak memory against width/depth and batch size (1 epoch each), as a table
	rm -rf outputs/scaling
	for h in '[500]' '[1000,500]' '[1500,1000,500]' '[2000,1500,1000,500]'; do \
	  $(NMFDNN) bench --out outputs/scaling/h$$h dataset=mnist hidden=$$h || exit 1; done
	for b in 1000 20000; do \
	  $(NMFDNN) bench --out outputs/scaling/b$$b dataset=mnist hidden=[1000,500] solver.batch_size=$$b || exit 1; done
	$(NMFDNN) bench --table outputs/scaling | tee outputs/scaling/scaling.md

bench-gpu: install ## on a GPU machine: CuPy install, CPU-vs-GPU agreement tests, GPU benchmark (float64, float32)
	$(PY) -m pip install --quiet --quiet -e '.[gpu]'
	$(PY) -m pytest -q -m gpu tests/test_gpu.py
	$(NMFDNN) bench backend=cupy dataset=mnist hidden=[1000,500] dtype=float64
	$(NMFDNN) bench backend=cupy dataset=mnist hidden=[1000,500] dtype=float32
