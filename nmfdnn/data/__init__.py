"""Data sets: MNIST and any IDX pair, a synthetic set for tests. X is features x samples."""

from .base import DataSplit, Dataset, load_dataset  # noqa: F401
