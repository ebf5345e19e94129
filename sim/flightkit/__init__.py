"""Project-wide run conventions: atomic files, logging, and reports (tables and JSON summaries).

Every package of the project writes files, logs and reports through this one place.
"""

from flightkit.atomic import write_bytes_atomic, write_json_atomic, write_text_atomic
from flightkit.logs import get_logger
from flightkit.reports import format_table, to_jsonable

__all__ = ["format_table", "get_logger", "to_jsonable", "write_bytes_atomic", "write_json_atomic", "write_text_atomic"]
