"""Prompt compression: fewer tokens per request without losing what the answer needs.

``compress(messages, ratio=3.0)`` runs normalisation, de-duplication, conversation
trimming and query-aware extraction; see docs/compression.md for the method and its
measured fidelity.
"""

from llmrouter.compression.pipeline import DEFAULT_STAGES, STAGES, CompressResult, compress

__all__ = ["DEFAULT_STAGES", "STAGES", "CompressResult", "compress"]
