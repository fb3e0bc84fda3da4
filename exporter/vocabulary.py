"""The words of a system session: the EM's ``State`` values and the exporter's results.

The parser reads sessions with them, the snapshot pre-fills a series for every known state
and tracks the newest success and failure, the collector and the ledger pre-fill a series for
every result. Each word is written here once.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

# The results the exporter reports, and the one for an outcome it cannot read.
SUCCESS: Final = "Success"
WARNING: Final = "Warning"
FAILED: Final = "Failed"
RESULTS: Final = (SUCCESS, WARNING, FAILED)
UNKNOWN: Final = "Unknown"

# The EM's State of a session still running, and of a finished one with the result it means.
RUNNING_STATE: Final = "InProgress"
FINAL_STATES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "CompletedSuccessfully": SUCCESS,
        "CompletedWarning": WARNING,
        "Failed": FAILED,
    }
)
KNOWN_STATES: Final = (RUNNING_STATE, *FINAL_STATES)
