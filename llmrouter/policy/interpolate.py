"""``${VAR}`` and ``${VAR:-default}`` substitution in policy values."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

__all__ = ["MissingVariable", "interpolate"]

_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}|\$\$")


class MissingVariable(KeyError):
    """An environment variable the policy names is not set and has no default."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def interpolate(value: str, environ: Mapping[str, str] | None = None) -> str:
    """Replace ``${VAR}``/``${VAR:-default}``; ``$$`` is a literal ``$``."""
    env = os.environ if environ is None else environ

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        found = env.get(name)
        if found is not None and (found != "" or default is None):
            return found
        if default is not None:
            return default
        raise MissingVariable(name)

    return _PATTERN.sub(substitute, value)
