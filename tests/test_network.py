"""The network object changes no bit: tiny nets of every preset class (dense and conv NMF, the
Gauss-Newton filter step, memory across batches, frozen filters, BP dense and conv, each activation,
with and without a bias) train to the same weights and evaluation history as the code recorded in
``tests/network_digests.json`` (SHA-256 of each array; the cases and how to record them:
``tests/helpers/network_digests.py``)."""

import json
from pathlib import Path

import pytest
from network_digests import CASES, digests

RECORDED = json.loads((Path(__file__).parent / "network_digests.json").read_text())


def test_every_case_is_recorded():
    assert sorted(RECORDED["cases"]) == sorted(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_same_bits_as_recorded(name):
    assert digests(CASES[name]) == RECORDED["cases"][name], f"{name}: not the weights of {RECORDED['commit']}"
