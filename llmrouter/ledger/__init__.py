"""The spend ledger: one row per call, and reports over it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from ..policy.schema import LedgerConfig
from .record import COLUMNS, CallRecord, new_request_id
from .report import SpendReport, spend_report
from .sqlite import SQLiteLedger

if TYPE_CHECKING:
    from .postgres import PostgresLedger

__all__ = [
    "COLUMNS",
    "CallRecord",
    "Ledger",
    "PostgresLedger",
    "SQLiteLedger",
    "SpendReport",
    "new_request_id",
    "open_ledger",
    "spend_report",
]


class Ledger(Protocol):
    """What the router and reports need from a ledger, whatever stores it."""

    dialect: str

    def record(self, record: CallRecord) -> None: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...
    def rows(
        self, since: float | None = None, until: float | None = None
    ) -> list[dict[str, Any]]: ...
    def query(self, sql: str, args: tuple[Any, ...] = ()) -> list[dict[str, Any]]: ...


def open_ledger(config: LedgerConfig) -> SQLiteLedger:
    """The ledger a policy's URL names: SQLite (embedded) or PostgreSQL (shared).

    Typed as :class:`SQLiteLedger` for callers written before PostgreSQL; both classes
    have the same methods (see :class:`Ledger`).
    """
    url = config.url
    if url.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresLedger  # psycopg only when a policy asks for it

        ledger: Any = PostgresLedger(url, sync=config.sync)
        return ledger
    return SQLiteLedger(url[len("sqlite:///") :], sync=config.sync)


def __getattr__(name: str) -> object:
    if name == "PostgresLedger":
        from .postgres import PostgresLedger

        return PostgresLedger
    raise AttributeError(f"module 'llmrouter.ledger' has no attribute {name!r}")
