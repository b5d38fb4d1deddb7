"""Policies: which backends exist, what they cost, and how to route between them."""

from .loader import default_policy_path, load_policy, packaged_policy, parse_policy
from .schema import (
    BackendConfig,
    CacheConfig,
    CompressionConfig,
    FallbackConfig,
    LedgerConfig,
    Policy,
    Price,
    RoutingConfig,
    SemanticCacheConfig,
    ServerConfig,
)

__all__ = [
    "BackendConfig",
    "CacheConfig",
    "CompressionConfig",
    "FallbackConfig",
    "LedgerConfig",
    "Policy",
    "Price",
    "RoutingConfig",
    "SemanticCacheConfig",
    "ServerConfig",
    "default_policy_path",
    "load_policy",
    "packaged_policy",
    "parse_policy",
]
