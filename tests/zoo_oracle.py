"""Loading the model-zoo parity oracles (../shared/data/reference/zoo); skips when absent."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

ZOO = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "reference" / "zoo"
TOL = 1e-4


class Oracle:
    """One ``<name>_shrunk`` oracle: ``meta`` (json), ``sd`` (state dict), ``inp``, ``out``, ``arrays``."""

    def __init__(self, name: str) -> None:
        npz, meta = ZOO / f"{name}_shrunk.npz", ZOO / f"{name}_shrunk.json"
        if not npz.exists() or not meta.exists():
            pytest.skip(f"zoo oracle not available: {npz}")
        self.meta = json.loads(meta.read_text())
        with np.load(npz) as data:
            self.arrays = {k: data[k] for k in data.files}
        self.sd = self.group("sd/")
        self.inp = self.group("in/")
        self.out = self.group("out/")

    def group(self, prefix: str) -> dict[str, torch.Tensor]:
        return {k[len(prefix) :]: torch.from_numpy(v) for k, v in self.arrays.items() if k.startswith(prefix)}


def assert_close(name: str, got: torch.Tensor, want: torch.Tensor, tol: float = TOL) -> float:
    """Assert same shape and max abs diff <= tol; print and return the diff."""
    got = got.detach().float()
    assert tuple(got.shape) == tuple(want.shape), f"{name}: shape {tuple(got.shape)} != {tuple(want.shape)}"
    diff = float((got - want.float()).abs().max())
    print(f"{name}: max abs diff {diff:.3e}")
    assert diff <= tol, f"{name}: max abs diff {diff} > {tol}"
    return diff
