"""The spend ledger: one row per call, and reports over it."""

from __future__ import annotations

from ..policy.schema import LedgerConfig
from .record import COLUMNS, CallRecord
from .report import SpendReport, spend_report
from .sqlite import SQLiteLedger

__all__ = ["COLUMNS", "CallRecord", "SQLiteLedger", "SpendReport", "open_ledger", "spend_report"]


def open_ledger(config: LedgerConfig) -> SQLiteLedger:
    """The ledger a policy names (the schema admits only URLs this build can open)."""
    return SQLiteLedger(config.url[len("sqlite:///") :])
