"""Routing: what a request needs, how likely each backend is to answer it, which one to use."""

from .conversations import ConversationMemory, conversation_key
from .decision import Candidate, Decision
from .health import CircuitBreaker
from .latency import LatencyEstimate, LatencyTracker
from .predictor import HeuristicPredictor, PromptProfile, QualityPredictor
from .request import RequestFacts, analyze_request, validate_messages
from .selector import Limits, Sticky, select

__all__ = [
    "Candidate",
    "CircuitBreaker",
    "ConversationMemory",
    "Decision",
    "HeuristicPredictor",
    "LatencyEstimate",
    "LatencyTracker",
    "Limits",
    "PromptProfile",
    "QualityPredictor",
    "RequestFacts",
    "Sticky",
    "analyze_request",
    "conversation_key",
    "select",
    "validate_messages",
]
