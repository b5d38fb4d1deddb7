"""What a routed prompt costs: recorded cost, else recorded usage, else an estimate.

The router decides on the estimate (prompt tokens x input price + expected output tokens x
output price); evaluation scores the decision on the recorded cost when the data has it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from llmrouter.policy.schema import BackendConfig
from llmrouter.tokens import count_text_tokens

from .dataset import Record

__all__ = ["cost_matrices"]


def _prices(backend: BackendConfig) -> tuple[float, float]:
    price = backend.price
    if price is None:
        return 0.0, 0.0
    return price.input_per_million / 1e6, price.output_per_million / 1e6


def cost_matrices(
    records: Sequence[Record], backends: Sequence[BackendConfig], output_tokens: int
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(realised cost, expected cost) per record and backend, in USD."""
    n, b = len(records), len(backends)
    realised = np.zeros((n, b))
    expected = np.zeros((n, b))
    prices = [_prices(backend) for backend in backends]
    for i, record in enumerate(records):
        prompt_tokens = count_text_tokens(record.text)
        for j, backend in enumerate(backends):
            rate_in, rate_out = prices[j]
            expected[i, j] = prompt_tokens * rate_in + output_tokens * rate_out
            if backend.name in record.costs:
                realised[i, j] = record.costs[backend.name]
            elif backend.name in record.usage:
                u = record.usage[backend.name]
                realised[i, j] = u.prompt_tokens * rate_in + u.completion_tokens * rate_out
            else:
                realised[i, j] = expected[i, j]
    return realised, expected
