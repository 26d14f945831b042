"""Where the tests find the recorded market data: ../shared/data beside the repository (as on
the developers' machines and in CI), or TRADEBOT_SHARED_DATA."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("TRADEBOT_SHARED_DATA", REPO.parent / "shared" / "data"))
