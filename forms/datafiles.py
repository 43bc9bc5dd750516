"""Reading the JSON data files that ship with the forms (statute texts, clause library)."""

from __future__ import annotations

import json
from pathlib import Path

from forms.errors import BaoxueError


def read_json(path: str | Path, what: str, error: type[BaoxueError]):
    """Parse ``path``; a missing or malformed file raises ``error`` naming ``what`` and the line."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise error(f"无法读取{what} {path}：{e.strerror}") from e
    except json.JSONDecodeError as e:
        raise error(f"{what} {path} 不是有效的JSON（第{e.lineno}行）") from e
