"""Arguments and output shared by several commands."""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timedelta, timezone
from typing import Any

from ..errors import InvalidRequest

__all__ = ["add_policy_argument", "parse_time", "print_json"]


def add_policy_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--policy",
        metavar="FILE",
        default=None,
        help="policy YAML (default: $LLMROUTER_POLICY, ./llmrouter.yaml, then the packaged local)",
    )


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def parse_time(value: str | None) -> float | None:
    """A time bound: ISO date/datetime (UTC if no zone), or a relative '7d', '12h', '30m'."""
    if value is None:
        return None
    text = value.strip()
    units = {"d": "days", "h": "hours", "m": "minutes"}
    if text[:-1].isdigit() and text[-1:] in units:
        delta = timedelta(**{units[text[-1]]: int(text[:-1])})
        return (datetime.now(timezone.utc) - delta).timestamp()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRequest(
            f"cannot read time {value!r}: use an ISO date (2026-11-01), a datetime, "
            "or a relative span like 7d, 12h, 30m"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()
