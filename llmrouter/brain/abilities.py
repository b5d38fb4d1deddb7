"""Per-backend parameters: calibrated values, else a known model's, else the policy rating.

A backend's parameters are ``ability`` (overall, on the difficulty scale), ``discrimination``
(how sharply its success falls with difficulty, 1.0 by default) and one skill offset per
demand category (``math``, ``code``, ``reasoning``, ``knowledge``, ``chat``; 0.0 by default).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from llmrouter.policy.schema import CALIBRATION_KEYS

from .model import CATEGORIES

__all__ = [
    "CALIBRATION_KEYS",
    "BackendParams",
    "canonical_model_id",
    "params_from_mapping",
    "rating_ability",
    "resolve_params",
]


@dataclass(frozen=True)
class BackendParams:
    ability: float
    discrimination: float = 1.0
    skills: tuple[float, ...] = (0.0,) * len(CATEGORIES)
    # Loadings on the prompt factors: known training models only (empty = no interaction).
    factors: tuple[float, ...] = ()

    def as_mapping(self) -> dict[str, float]:
        """The readable form written into a policy's ``calibration:`` block."""
        out = {"ability": round(self.ability, 4), "discrimination": round(self.discrimination, 4)}
        out.update({c: round(s, 4) for c, s in zip(CATEGORIES, self.skills, strict=True)})
        return out


def canonical_model_id(model: str) -> str:
    """Provider-neutral model id: lower case, without a ``provider/`` prefix."""
    return model.strip().lower().rsplit("/", 1)[-1]


def rating_ability(quality: float, meta: Mapping[str, Any]) -> float:
    """Map a policy rating in (0, 1) to an ability: linear in logit(rating), increasing.

    The line is anchored at training time on two reference models (see docs/brain.md).
    """
    q = min(max(quality, 1e-4), 1 - 1e-4)
    anchor = meta.get("rating_map", {})
    slope = float(anchor.get("slope", 1.0))
    intercept = float(anchor.get("intercept", 0.0))
    return intercept + slope * math.log(q / (1 - q))


def params_from_mapping(values: Mapping[str, Any], base: BackendParams) -> BackendParams:
    """Overlay the keys present in ``values`` on ``base`` (unknown keys are ignored)."""
    skills = tuple(float(values.get(c, s)) for c, s in zip(CATEGORIES, base.skills, strict=True))
    factors = values.get("factors", base.factors)
    return BackendParams(
        ability=float(values.get("ability", base.ability)),
        discrimination=float(values.get("discrimination", base.discrimination)),
        skills=skills,
        factors=tuple(float(u) for u in factors) if isinstance(factors, list | tuple) else (),
    )


def resolve_params(
    model: str, quality: float, calibration: Mapping[str, float] | None, meta: Mapping[str, Any]
) -> BackendParams:
    """Calibration first, then a known model id (training models), then the rating."""
    known = meta.get("models", {}).get(canonical_model_id(model))
    base = (
        params_from_mapping(known, BackendParams(0.0))
        if known is not None
        else BackendParams(rating_ability(quality, meta))
    )
    return params_from_mapping(calibration, base) if calibration else base
