"""`make test`'s `--dist loadgroup` keeps the tests of one xdist_group on one worker.

The flight graphs (tests/ros/test_inflight_replanning.py, tests/bench/test_bench_ros_soak.py) share the group
"flight_graph" so that only one of them loads CI's two cores at a time. With pytest 9.2 and pytest-xdist 3.8
the group was silently ignored (xdist writes the group into a node attribute pytest 9.2 no longer reads):
both workers flew graphs at once, and plans reached the vehicle late.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

MODULE = """
import os
import pytest

pytestmark = pytest.mark.xdist_group("one_at_a_time")


@pytest.fixture(scope="module", params=["a", "b", "c"])
def flight(request):
    return request.param


@pytest.mark.parametrize("check", range(3))
def test_grouped(flight, check):
    with open(os.environ["GROUP_LOG"], "a") as log:
        log.write(os.environ["PYTEST_XDIST_WORKER"] + " ")



@pytest.mark.parametrize("index", range(6))
def test_free(index):
    pass
"""


@pytest.mark.slow
def test_tests_of_one_group_run_on_one_worker(tmp_path: Path) -> None:
    (tmp_path / "test_grouped.py").write_text(MODULE)
    log = tmp_path / "workers.log"
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-p", "no:cacheprovider", "-q"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "GROUP_LOG": str(log)},
    )  # fmt: skip
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    workers = log.read_text().split()
    assert len(workers) == 9, workers
    assert len(set(workers)) == 1, f"the group ran on workers {sorted(set(workers))}"
