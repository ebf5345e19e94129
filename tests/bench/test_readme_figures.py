"""The README's marked figures are the committed bench results' own numbers (scripts/readme_figures.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .script_loader import load_bench_script

ROOT = Path(__file__).resolve().parents[2]


def test_every_marked_figure_matches_its_bench_result() -> None:
    completed = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "readme_figures.py"), "--check"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr


def test_a_figure_that_drifted_from_its_result_is_found_and_rewritten() -> None:
    module = load_bench_script(ROOT / "scripts" / "readme_figures.py", "readme_figures")
    results = {"toy": {"ratios": [{"x": 155.4}], "rate": 0.984}}
    text = "RotorPy <!--fig toy:ratios.0.x:.0f-->30<!--/fig-->x, <!--fig toy:rate:.0%-->90<!--/fig--> %"
    new, changed = module.sync(text, results, "README.md")
    assert new == "RotorPy <!--fig toy:ratios.0.x:.0f-->155<!--/fig-->x, <!--fig toy:rate:.0%-->98<!--/fig--> %"
    assert len(changed) == 2
    assert "the text says 30" in changed[0]
    assert module.sync(new, results, "README.md") == (new, [])


def test_committed_results_are_full_runs_not_smoke_runs() -> None:
    import json

    results = sorted((ROOT / "bench" / "results").rglob("*.json"))
    assert {path.stem for path in results} >= {"minsnap", "fidelity", "planner", "ros_latency", "ros_soak", "mavlink"}
    smoke = [path.name for path in results if json.loads(path.read_text()).get("smoke") is not False]
    assert smoke == [], f"smoke-sized or unmarked results committed as figures: {smoke}"
