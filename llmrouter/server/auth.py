"""Client API keys: named by environment variables in the policy, compared in constant time."""

from __future__ import annotations

import hmac
import os
from collections.abc import Sequence

from ..errors import LLMRouterError, PolicyError

__all__ = ["ApiKeys", "Unauthorized"]


class Unauthorized(LLMRouterError):
    status_code = 401
    error_type = "invalid_request_error"
    code = "invalid_api_key"


class ApiKeys:
    """The keys a client may present, read once at start (never logged, never echoed)."""

    def __init__(self, env_names: Sequence[str]) -> None:
        keys: list[bytes] = []
        for name in env_names:
            value = os.environ.get(name, "")
            if not value:
                raise PolicyError(
                    f"server.api_keys_env names {name!r}, but that environment variable is "
                    "unset or empty; set it, or remove it from the policy",
                    key="server.api_keys_env",
                )
            keys.append(value.encode())
        self._keys = tuple(keys)
        self._names = tuple(env_names)  # a key's id in the ledger and budgets: its env var name

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def check(self, authorization: str | None, api_key: str | None) -> str | None:
        """Raise :class:`Unauthorized` unless the request carries an accepted key; return the
        id of the key (the name of its environment variable, never the key), None if no keys.

        Every configured key is compared, whatever matched, so timing reveals nothing.
        """
        if not self._keys:
            return None
        presented = api_key
        if authorization is not None:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() == "bearer":
                presented = token.strip()
        if not presented:
            raise Unauthorized(
                "missing API key: send 'Authorization: Bearer <key>' (a key this sidecar's "
                "policy accepts through server.api_keys_env)"
            )
        candidate = presented.encode("utf-8", "replace")
        matched: str | None = None
        for name, key in zip(self._names, self._keys, strict=True):
            if hmac.compare_digest(candidate, key):
                matched = name
        if matched is None:
            raise Unauthorized("invalid API key")
        return matched
