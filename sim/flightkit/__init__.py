"""Project-wide run conventions: atomic files, logging, reports (tables and JSON summaries), the CLI runner.

Every package of the project writes files, logs and reports through this one place.
"""

from flightkit.atomic import write_bytes_atomic, write_json_atomic, write_text_atomic
from flightkit.cli import UserError, as_user_error, run_cli
from flightkit.logs import get_logger
from flightkit.reports import format_table, to_jsonable

__all__ = [
    "UserError",
    "as_user_error",
    "format_table",
    "get_logger",
    "run_cli",
    "to_jsonable",
    "write_bytes_atomic",
    "write_json_atomic",
    "write_text_atomic",
]
