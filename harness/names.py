"""Names that become folder names: suite, stage, arm, run id, benchmark.

runs/<suite>/<stage>-<arm>-s<seed>/eval/<benchmark>/ is built from names a suite file (or a
spec.json) chooses, so each must be one plain path component: letters, digits, '_', '.', '-',
starting with a letter or digit. That excludes '/', '..', absolute paths, spaces and control
characters, so no name can reach outside the runs folder or collide with hidden files.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

MAX_LENGTH = 64  # run ids join three names; file systems allow 255 bytes per component
_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
RULE = "use letters, digits, '_', '.' and '-', starting with a letter or digit, at most 64 characters"


def check_name(value: str) -> str:
    """value unchanged when it is a safe folder name; ValueError saying why not otherwise."""
    if not _SAFE.fullmatch(value) or len(value) > MAX_LENGTH:
        raise ValueError(f"{value!r} is not a safe name (it becomes a folder name): {RULE}")
    return value


def is_safe_name(value: str) -> bool:
    return bool(_SAFE.fullmatch(value)) and len(value) <= MAX_LENGTH


SafeName = Annotated[str, AfterValidator(check_name)]
