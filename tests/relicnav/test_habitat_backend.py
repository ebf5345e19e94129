"""The habitat backend without habitat: a one-line user error that names the conda route."""

from __future__ import annotations

import sys

import pytest

from relicnav import HabitatObjectNav, HabitatUnavailableError, make_trial_env
from runkit import UserError
from runkit.cli import EXIT_USER_ERROR, run_guarded


@pytest.fixture(autouse=True)
def no_habitat(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make `import habitat` fail even where habitat-lab is installed."""
    monkeypatch.setitem(sys.modules, "habitat", None)


def test_building_it_without_habitat_names_the_install_route() -> None:
    with pytest.raises(HabitatUnavailableError) as raised:
        HabitatObjectNav("benchmark/nav/objectnav/objectnav_hm3d.yaml")
    message = str(raised.value)
    assert isinstance(raised.value, UserError)
    assert "\n" not in message
    assert "conda install habitat-sim -c conda-forge -c aihabitat" in message
    assert "pip install habitat-lab" in message


def test_the_factory_raises_the_same_error() -> None:
    with pytest.raises(HabitatUnavailableError, match="conda install habitat-sim"):
        make_trial_env("habitat", config_path="objectnav.yaml")


def test_a_command_reports_it_as_a_user_error(capsys: pytest.CaptureFixture[str]) -> None:
    status = run_guarded(lambda: HabitatObjectNav("objectnav.yaml") and None)
    assert status == EXIT_USER_ERROR
    error_lines = capsys.readouterr().err.strip().splitlines()
    assert len(error_lines) == 1
    assert "conda install habitat-sim" in error_lines[0]
