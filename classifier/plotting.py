"""matplotlib's pyplot, imported on first use: only the pictures need it.

Importing matplotlib.pyplot costs about 38 MB of resident memory and a noticeable part of
start-up; ``triage serve`` draws a picture only when someone asks for one (``/evalreport``,
``/triage stats``), so the modules that draw (``confusion_png``, ``learning_curve_png``,
``admin.desk_stats_png``) call ``pyplot()`` when they draw, and nothing imports matplotlib at
module level.
"""

from __future__ import annotations

import threading
from types import ModuleType

_lock = threading.Lock()


def pyplot() -> ModuleType:
    """``matplotlib.pyplot`` with the Agg backend (no display: render to memory only)."""
    with _lock:  # the first import chooses the backend; pictures are drawn in worker threads
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        return plt
