"""One logging set-up for every command line tool and library module of the project."""

from __future__ import annotations

import logging
import os
import sys

_FORMAT = "%(asctime)s %(levelname).1s %(name)s: %(message)s"
_configured = False


def get_logger(name: str) -> logging.Logger:
    """Return a logger under the project's handler (stderr; level from `MFRL_LOG_LEVEL`, default INFO)."""
    global _configured
    if not _configured:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(_FORMAT, datefmt="%H:%M:%S"))
        root = logging.getLogger("mfrlstack")
        root.addHandler(handler)
        root.setLevel(os.environ.get("MFRL_LOG_LEVEL", "INFO").upper())
        root.propagate = False
        _configured = True
    return logging.getLogger(f"mfrlstack.{name}")
