"""The ledger writers' buffer: many rows per transaction, flush waits for exactly what came
before it, stop drains everything."""

from __future__ import annotations

import threading
from typing import Any

from llmrouter.ledger.batching import RowBuffer


def run_writer(buffer: RowBuffer, batches: list[list[Any]]) -> threading.Thread:
    def loop() -> None:
        while True:
            rows, markers = buffer.take()
            if rows:
                batches.append(rows)
            if buffer.settle(markers):
                return

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread


def test_rows_put_together_are_committed_together() -> None:
    buffer = RowBuffer(linger_s=3600, max_rows=500)  # only flush/stop/max_rows wake it
    batches: list[list[Any]] = []
    writer = run_writer(buffer, batches)
    for i in range(1200):
        buffer.put(i)
    buffer.flush()
    assert sum(len(b) for b in batches) == 1200
    assert max(len(b) for b in batches) == 500  # capped per transaction
    assert len(batches) <= 4
    buffer.put("last")
    buffer.stop()
    writer.join(timeout=5)
    assert not writer.is_alive()
    assert batches[-1] == ["last"]


def test_flush_with_nothing_buffered_returns() -> None:
    buffer = RowBuffer(linger_s=3600)
    batches: list[list[Any]] = []
    writer = run_writer(buffer, batches)
    buffer.flush()
    buffer.stop()
    writer.join(timeout=5)
    assert batches == []
