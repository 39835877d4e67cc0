"""Configuration, by job: :mod:`.schema` (the dataclasses behind ``conf/``: every key's default, range
and help, declared with :mod:`.ranges`), :mod:`.validate` (the ranges and the cross-field checks before
any work), :mod:`.help` (the config as ``train --help`` prints it), :mod:`.hydra` (ConfigStore
registration and composition) and :mod:`.identity` (which keys say what a run computes). The names
callers use are re-exported here."""

from .hydra import compose_config, conf_dir, one_line, plain_overrides, register_configs, sweep_jobs
from .identity import NON_RESULT_KEYS, dtype_name, effective, has_bias
from .schema import (DATASET_SCHEMAS, SOLVER_SCHEMAS, ArrayConfig, BackendConfig, BackendName, BPSolverConfig,
                     CIFAR10Config, DatasetConfig, DType, FashionMNISTConfig, IDXConfig, InputPinv, Loss, MNISTConfig,
                     NMFSolverConfig, OutputInit, Pinv, SyntheticConfig, TrainConfig)
from .validate import validate, validate_ranks, widest_rows

__all__ = ["NON_RESULT_KEYS", "DATASET_SCHEMAS", "SOLVER_SCHEMAS", "ArrayConfig", "BackendConfig", "BackendName",
           "BPSolverConfig", "DType", "InputPinv", "Loss", "OutputInit", "Pinv",
           "CIFAR10Config", "DatasetConfig", "FashionMNISTConfig", "IDXConfig", "MNISTConfig", "NMFSolverConfig",
           "SyntheticConfig", "TrainConfig", "compose_config", "conf_dir", "dtype_name", "effective", "has_bias", "one_line",
           "plain_overrides", "register_configs", "sweep_jobs", "validate", "validate_ranks", "widest_rows"]
