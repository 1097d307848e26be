"""matplotlib is imported when a picture is drawn, not when the bot starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_bot_starts_without_matplotlib_and_draws_with_it() -> None:
    script = (
        "import sys\n"
        "import bot.cli, bot.runtime, bot.app, admin.report, admin.desk_stats_png\n"
        "print('matplotlib' in sys.modules)\n"
        "from classifier.learning_curve_png import learning_curve_png\n"
        "png = learning_curve_png([('#1', 0.8)], [('2026-W01', 0.1)])\n"
        "print('matplotlib' in sys.modules, png[:8] == bytes.fromhex('89504e470d0a1a0a'))\n"
    )
    done = subprocess.run(  # noqa: S603  # this interpreter, a fixed script
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert done.stdout.split() == ["False", "True", "True"]
