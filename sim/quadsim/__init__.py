"""The quadrotor at three fidelities: analytic (flatness), MuJoCo, and RotorPy; one vehicle, one interface."""

from quadsim.evaluation import EvaluationResult, FeasibilityCriteria, FidelityEvaluator
from quadsim.vehicle import VehicleParams

__all__ = ["EvaluationResult", "FeasibilityCriteria", "FidelityEvaluator", "VehicleParams"]
