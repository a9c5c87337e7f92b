"""Reading training data in JSONL: one JSON value per line, blank lines skipped."""

import json
from collections.abc import Iterator
from pathlib import Path

from omnicoach.errors import InvalidRequestError


def read_jsonl(path: Path) -> Iterator[tuple[int, object]]:
    """(line number, value) for each line; a missing file or a line that is not JSON is an
    error naming the file and the line."""
    path = Path(path)
    if not path.is_file():
        raise InvalidRequestError(f"no data file at {path}")
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as exc:
                raise InvalidRequestError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
