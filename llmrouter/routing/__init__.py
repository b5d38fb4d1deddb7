"""Routing: what a request needs, how likely each backend is to answer it, which one to use."""

from .decision import Candidate, Decision
from .health import CircuitBreaker
from .latency import LatencyEstimate, LatencyTracker
from .predictor import HeuristicPredictor, PromptProfile, QualityPredictor
from .request import RequestFacts, analyze_request, validate_messages
from .selector import Limits, select

__all__ = [
    "Candidate",
    "CircuitBreaker",
    "Decision",
    "HeuristicPredictor",
    "LatencyEstimate",
    "LatencyTracker",
    "Limits",
    "PromptProfile",
    "QualityPredictor",
    "RequestFacts",
    "analyze_request",
    "select",
    "validate_messages",
]
