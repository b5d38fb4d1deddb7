"""The spend dashboard: a static page (no CDN; charts drawn as inline SVG by its own small
script) and a JSON endpoint it reads, as an ASGI app the sidecar mounts at ``/dashboard``.
"""

from __future__ import annotations

from .app import DashboardApp
from .data import dashboard_data

__all__ = ["DashboardApp", "dashboard_data"]
