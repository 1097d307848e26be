"""Move PyTorch's entry out of the image lock into its own file (run by `make lock`).

pip has no per-package index: a requirements file installed with ``--extra-index-url`` lets
every package come from either index (dependency confusion). So the image installs
``requirements/image.txt`` from PyPI only and ``requirements/torch-cpu.txt`` from PyTorch's CPU
index only (``--index-url``), both with ``--require-hashes --no-deps``: each file is complete
for its index and nothing is resolved at build time.

Usage: python requirements/split_torch.py requirements/image.txt requirements/torch-cpu.txt
"""

from __future__ import annotations

import sys
from pathlib import Path

HEADER = """\
# PyTorch's CPU wheel, pinned with its hash; installed alone from PyTorch's CPU index
# (Dockerfile: --index-url, --no-deps). Written by `make lock` from requirements/image.txt;
# empty when the project no longer needs torch.
"""


def split(lock: str, package: str = "torch") -> tuple[str, str]:
    """(the lock without ``package``'s entry, that entry) of a pip-compile output."""
    kept: list[str] = []
    taken: list[str] = []
    inside = False
    for line in lock.splitlines(keepends=True):
        if line[:1].isalnum():  # a requirement starts at column 0; hashes and comments do not
            inside = line.split("==", 1)[0].strip().lower() == package
        elif line.strip() and not line.startswith((" ", "\t")):
            inside = False  # a top-level comment ends the entry
        (taken if inside else kept).append(line)
    return "".join(kept), "".join(taken)


def main(argv: list[str]) -> int:
    """Rewrite the lock at argv[0] without torch and write torch's entry to argv[1]."""
    lock_path, torch_path = Path(argv[0]), Path(argv[1])
    rest, torch = split(lock_path.read_text())
    lock_path.write_text(rest)
    torch_path.write_text(HEADER + torch)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
