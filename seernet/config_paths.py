"""Where shared, read-only data lives: ``../shared/data`` beside the checkout (override: PERFSEER_SHARED_DATA)."""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("PERFSEER_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
