"""Print the oldest release every runtime dependency admits (``name==lower bound``), as pip
constraints: ``make lowest`` installs the project with them and runs the tests, which checks
that the lower bounds in pyproject.toml are real. The embeddings extra is left out (its torch
is pinned and its stack is checked by the lock)."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def lowest(requirements: list[str]) -> list[str]:
    """``name==version`` for each requirement with a ``>=`` bound (extras dropped)."""
    out = []
    for line in requirements:
        match = re.match(r"^([A-Za-z0-9_.-]+)(?:\[[^]]*\])?\s*(.*)$", line)
        if match is None:
            continue
        name, spec = match.groups()
        bound = re.search(r">=\s*([0-9][^,;\s]*)", spec)
        if bound is not None:
            out.append(f"{name}=={bound.group(1)}")
    return out


def main() -> int:
    """Write the constraints for ``[project] dependencies`` to stdout."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    sys.stdout.write("".join(f"{line}\n" for line in lowest(project["dependencies"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
