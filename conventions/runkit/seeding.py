"""Seeding and the random generators' state: one way for every trainer to start and to resume a run.

`seed_everything` seeds python's, numpy's global and torch's generators and sets torch's threads and
determinism; `capture_rng` / `restore_rng` save and restore the three generators as plain numbers and
tensors (a checkpoint holds them; nothing is pickled).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int, deterministic: bool = True, threads: int = 0) -> None:
    """Seed python, numpy and torch; ask torch for deterministic algorithms; set its CPU threads (0: leave)."""
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 (the global generator that libraries draw from)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    if threads > 0:
        torch.set_num_threads(threads)


def capture_rng() -> dict[str, Any]:
    """States of python's, numpy's global and torch's CPU random generators, as plain numbers and tensors."""
    version, internal, gauss_next = random.getstate()
    numpy_state = np.random.get_state(legacy=True)  # noqa: NPY002
    assert isinstance(numpy_state, tuple)  # legacy=True: ("MT19937", keys, position, has_gauss, cached_gaussian)
    kind, keys, position, has_gauss, cached_gaussian = numpy_state
    return {
        "python": {"version": int(version), "internal": [int(v) for v in internal], "gauss_next": gauss_next},
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "torch": torch.get_rng_state(),
    }


def restore_rng(state: Mapping[str, Any]) -> None:
    """Inverse of `capture_rng`: the three generators continue with the same streams."""
    python, numpy_state = state["python"], state["numpy"]
    random.setstate((int(python["version"]), tuple(int(v) for v in python["internal"]), python["gauss_next"]))
    keys = np.asarray(torch.as_tensor(numpy_state["keys"]).numpy(), dtype=np.uint32)
    np.random.set_state(  # noqa: NPY002
        (
            str(numpy_state["kind"]),
            keys,
            int(numpy_state["position"]),
            int(numpy_state["has_gauss"]),
            float(numpy_state["cached_gaussian"]),
        )
    )
    torch.set_rng_state(torch.as_tensor(state["torch"], dtype=torch.uint8))


__all__ = ["capture_rng", "restore_rng", "seed_everything"]
