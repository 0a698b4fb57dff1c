"""The JSON assertions of HTTP checks: `$.status == "ok"`, `$.checks[0].healthy == true`,
`$.queue.depth < 100`. A path of names and indexes, a comparison, a JSON value; no more,
so that what staff write is what runs, with a clear error when it cannot.
"""

import json
import operator
import re
from collections.abc import Callable, Sequence
from typing import Any

COMPARISONS: dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq,
    "!=": operator.ne,
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}
ASSERTION = re.compile(r"^\s*(\$[^\s=!<>]*)\s*(==|!=|>=|<=|>|<)\s*(.+?)\s*$")
STEP = re.compile(r"\.([A-Za-z_][\w-]*)|\[(\d+)\]|\[\s*(['\"])(.*?)\3\s*\]")


class AssertionSyntaxError(ValueError):
    pass


def parse(assertion: str) -> tuple[list[str | int], str, object]:
    """(path steps, comparison, expected value); AssertionSyntaxError says what is wrong."""
    match = ASSERTION.match(assertion)
    if not match:
        raise AssertionSyntaxError(
            'Write a path, a comparison and a JSON value, e.g. $.status == "ok".'
        )
    path, comparison, value = match.groups()
    steps: list[str | int] = []
    position = 1
    while position < len(path):
        step = STEP.match(path, position)
        if not step:
            raise AssertionSyntaxError(f"Cannot read the path {path!r} from {path[position:]!r}.")
        name, index, _, quoted = step.groups()
        steps.append(int(index) if index is not None else (name if name is not None else quoted))
        position = step.end()
    try:
        expected = json.loads(value)
    except json.JSONDecodeError as error:
        raise AssertionSyntaxError(
            f"{value!r} is not a JSON value (strings need double quotes)."
        ) from error
    return steps, comparison, expected


def holds(assertion: str, document: object) -> tuple[bool, str]:
    """Whether the assertion holds for the parsed JSON document, and what was found."""
    steps, comparison, expected = parse(assertion)
    found = document
    for step in steps:
        try:
            found = found[step]  # type: ignore[index]
        except (KeyError, IndexError, TypeError):
            return False, f"{_path(steps)} is missing"
    try:
        result = COMPARISONS[comparison](found, expected)
    except TypeError:
        result = False
    return bool(result), f"{_path(steps)} is {json.dumps(found)[:100]}"


def _path(steps: Sequence[str | int]) -> str:
    return "$" + "".join(f"[{s}]" if isinstance(s, int) else f".{s}" for s in steps)
