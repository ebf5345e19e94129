"""The `px4sim` command: starts a vehicle that answers, stops on SIGTERM; bad input is refused with a reason."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tyro
from ground import Ground

from px4sim.cli import Args, config_from_args

pytestmark = pytest.mark.mavlink


def test_config_from_args_parses_params_and_key() -> None:
    cfg = config_from_args(Args(param=["COM_OF_LOSS_T=0.5"], signing_key_hex="00" * 32, require_signing=True))
    assert cfg.params == {"COM_OF_LOSS_T": 0.5}
    assert cfg.signing_key == bytes(32)
    with pytest.raises(ValueError, match="NAME=VALUE"):
        config_from_args(Args(param=["COM_OF_LOSS_T"]))
    with pytest.raises(ValueError, match="signing_key"):
        config_from_args(Args(require_signing=True))


def test_cli_applies_every_repeated_param() -> None:
    """`--param` given several times: each one is set at boot, not only the last."""
    args = tyro.cli(Args, args=["--param", "COM_OF_LOSS_T=0.5", "--param", "NAV_DLL_ACT=2", "--param", "GF_ACTION=3"])
    cfg = config_from_args(args)
    assert cfg.params == {"COM_OF_LOSS_T": 0.5, "NAV_DLL_ACT": 2.0, "GF_ACTION": 3.0}


def test_cli_runs_a_vehicle_until_sigterm() -> None:
    ground = Ground()
    proc = subprocess.Popen(
        [sys.executable, "-m", "px4sim.cli", "--url", ground.url, "--stream-rate-scale", "0.1"],
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        hb = ground.wait("HEARTBEAT", timeout_s=20.0)
        assert hb.autopilot == 12
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10.0) == 0
        ground.close()
    time.sleep(0.1)
