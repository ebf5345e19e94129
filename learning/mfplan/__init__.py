"""MFRL time allocation: a learned planner of minimum-snap segment times, co-trained with a
multi-fidelity reward estimator (BoTorch), and certified by the analytic feasibility check."""
