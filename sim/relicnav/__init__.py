"""relicnav: the environments of ReLIC (in-context RL for navigation), behind one trial interface.

- `relicnav.trial`: the `TrialEnv` protocol (a trial is one layout, played for many episodes), the
  held-out layout seeds (`trial_seeds`) and the factory (`make_trial_env`);
- `relicnav.darkroom`: the authors' Darkroom grid task (goal cells split 80 / 20 as the authors split them);
- `relicnav.cuebandit`: a one-step memory task for fast learning tests of an in-context trainer;
- `relicnav.objectnav3d`: first-person multi-object navigation in miniworld's four rooms, with a
  shortest-path expert (`relicnav.occupancy` holds its grid planner);
- `relicnav.habitat_backend`: the same interface over habitat-lab, for users who have habitat-sim.

Importing `relicnav` stays light (numpy and gymnasium): miniworld (and pyglet's OpenGL) is imported with
`relicnav.objectnav3d`, and habitat only when a `HabitatObjectNav` is built.
"""

from relicnav.cuebandit import CueBandit
from relicnav.darkroom import Darkroom
from relicnav.habitat_backend import HabitatObjectNav, HabitatUnavailableError
from relicnav.trial import ENV_NAMES, EVAL_SEED_OFFSET, TrialEnv, make_trial_env, trial_seeds

__all__ = [
    "ENV_NAMES",
    "EVAL_SEED_OFFSET",
    "CueBandit",
    "Darkroom",
    "HabitatObjectNav",
    "HabitatUnavailableError",
    "TrialEnv",
    "make_trial_env",
    "trial_seeds",
]
