"""Run fidelity evaluations: analytic inline, simulations in local worker processes or as Ray tasks.

One `EvaluationDispatcher` serves the whole training run. Without a Ray address it keeps a pool of
local worker processes (each builds its simulators once); with one, every simulated evaluation is a
Ray task on that cluster. Either way a failed flight comes back as an infeasible result with a reason.
"""

from __future__ import annotations

import copy
import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from mfplan.configs import MASS_ERROR_FIDELITIES
from mfplan.fidelities import FIDELITY_NAMES
from minsnap import Trajectory
from quadsim.analytic import AnalyticEvaluator
from quadsim.evaluation import EvaluationResult, FeasibilityCriteria, FidelityEvaluator
from quadsim.mujoco_flight import MujocoEvaluator
from quadsim.rotorpy_flight import RotorPyEvaluator
from quadsim.vehicle import VehicleParams
from runkit import get_logger
from runkit.metrics import progress_bar

log = get_logger("mfplan.dispatch")


@dataclass(frozen=True)
class EvaluatorSpec:
    """Everything a worker needs to build the evaluators (picklable, small)."""

    vehicle: VehicleParams = field(default_factory=VehicleParams)
    criteria: FeasibilityCriteria = field(default_factory=FeasibilityCriteria)
    rotorpy_seed: int = 0

    def build(self, fidelity: str) -> FidelityEvaluator:
        """The evaluator of one fidelity."""
        if fidelity == "analytic":
            return AnalyticEvaluator(self.vehicle, self.criteria)
        if fidelity == "mujoco":
            return MujocoEvaluator(self.vehicle, self.criteria)
        if fidelity == "rotorpy":
            return RotorPyEvaluator(self.vehicle, self.criteria, seed=self.rotorpy_seed)
        if fidelity in MASS_ERROR_FIDELITIES:
            error = MASS_ERROR_FIDELITIES[fidelity]
            return RotorPyEvaluator(self.vehicle, self.criteria, seed=self.rotorpy_seed, mass_error=error)
        raise ValueError(f"unknown fidelity {fidelity!r}; expected one of {(*FIDELITY_NAMES, *MASS_ERROR_FIDELITIES)}")


_WORKER_EVALUATORS: dict[tuple[EvaluatorSpec, str], FidelityEvaluator] = {}


def evaluate_request(
    spec: EvaluatorSpec, fidelity: str, trajectory_json: dict[str, Any], wind_seed: int | None = None
) -> EvaluationResult:
    """Evaluate one trajectory (given as its JSON dict) at one fidelity.

    `wind_seed` (RotorPy only) flies this one flight in another realisation of wind and sensor noise
    than `spec.rotorpy_seed`'s. Runs in a worker process or a Ray task; evaluators are cached per process.
    """
    key = (spec, fidelity)
    if key not in _WORKER_EVALUATORS:
        _WORKER_EVALUATORS[key] = spec.build(fidelity)
    evaluator = _WORKER_EVALUATORS[key]
    if wind_seed is not None and isinstance(evaluator, RotorPyEvaluator):
        evaluator = copy.copy(evaluator)
        evaluator.seed = int(wind_seed)
    return evaluator.safe_evaluate_one(Trajectory.from_dict(trajectory_json))


class EvaluationDispatcher:
    """Evaluates batches of (trajectory, fidelity) requests.

    Args:
        spec: vehicle, criteria and simulator seed.
        num_workers: local worker processes for simulated fidelities (ignored with Ray).
        ray_address: a Ray cluster address (e.g. "auto" or "ray://host:10001"); None for local workers.
        show_progress: draw the progress bars that `evaluate(progress=...)` asks for (False: none at all).
    """

    def __init__(
        self,
        spec: EvaluatorSpec | None = None,
        num_workers: int = 2,
        ray_address: str | None = None,
        show_progress: bool = True,
    ) -> None:
        self.spec = spec or EvaluatorSpec()
        self.num_workers = max(1, num_workers)
        self.ray_address = ray_address
        self.show_progress = show_progress
        self._pool: Executor | None = None
        self._ray_task: Any = None
        self._analytic = self.spec.build("analytic")

    def _ensure_backend(self) -> None:
        if self.ray_address is not None and self._ray_task is None:
            import ray

            if not ray.is_initialized():
                ray.init(address=self.ray_address, include_dashboard=False, log_to_driver=False)
            self._ray_task = ray.remote(evaluate_request)
            log.info("dispatching simulated evaluations to Ray at %s", self.ray_address)
        elif self.ray_address is None and self._pool is None:
            context = multiprocessing.get_context("spawn")  # no fork after torch threads exist
            self._pool = ProcessPoolExecutor(max_workers=self.num_workers, mp_context=context)

    def evaluate(
        self,
        requests: Sequence[tuple[Trajectory, str]],
        wind_seeds: Sequence[int | None] | None = None,
        progress: str | None = None,
    ) -> list[EvaluationResult]:
        """Results in the order of the requests.

        Args:
            requests: (trajectory, fidelity) pairs.
            wind_seeds: one per request: the RotorPy flight's wind and noise seed (None: the spec's).
            progress: show a progress bar of the simulated evaluations with this label (None: no bar).
        """
        if wind_seeds is not None and len(wind_seeds) != len(requests):
            raise ValueError(f"got {len(wind_seeds)} wind seeds for {len(requests)} requests")
        seeds = list(wind_seeds) if wind_seeds is not None else [None] * len(requests)
        results: list[EvaluationResult | None] = [None] * len(requests)
        remote: list[tuple[int, str, dict[str, Any], int | None]] = []
        for i, (trajectory, fidelity) in enumerate(requests):
            if fidelity not in FIDELITY_NAMES and fidelity not in MASS_ERROR_FIDELITIES:
                known = (*FIDELITY_NAMES, *MASS_ERROR_FIDELITIES)
                raise ValueError(f"unknown fidelity {fidelity!r}; expected one of {known}")
            if fidelity == "analytic":
                results[i] = self._analytic.safe_evaluate_one(trajectory)
            else:
                remote.append((i, fidelity, trajectory.to_dict(), seeds[i]))
        if remote:
            self._ensure_backend()
            if self._ray_task is not None:
                import ray

                refs = [self._ray_task.remote(self.spec, f, d, seed) for _, f, d, seed in remote]
                outputs = _collect(refs, ray.get, progress, self.show_progress)
            else:
                assert self._pool is not None
                futures = [self._pool.submit(evaluate_request, self.spec, f, d, seed) for _, f, d, seed in remote]
                outputs = _collect(futures, lambda future: future.result(), progress, self.show_progress)
            for (i, _, _, _), output in zip(remote, outputs, strict=True):
                results[i] = output
        return [r for r in results if r is not None]

    def close(self) -> None:
        """Stop the worker processes (Ray is left running: it may be shared)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> EvaluationDispatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _collect(
    items: list[Any], get: Callable[[Any], EvaluationResult], label: str | None, enabled: bool
) -> list[EvaluationResult]:
    """`get(item)` of every item in order, with the project's progress bar (advanced as each one is collected)
    when `label` is given and bars are `enabled`."""
    if label is None:
        return [get(item) for item in items]
    outputs = []
    with progress_bar(len(items), label, enabled, unit="flight") as bar:
        for item in items:
            outputs.append(get(item))
            bar.update(1)
    return outputs
