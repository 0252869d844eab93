"""The CLI's settings are the service's (``server.settings``) and the library's limits (``seernet.settings``)."""
from __future__ import annotations

from seernet.settings import REPO_ROOT, Limits
from server.settings import Settings

__all__ = ["REPO_ROOT", "Limits", "Settings"]
