"""Text and JSON that people send: what PostgreSQL cannot store, and what to do about it.

PostgreSQL refuses two kinds of text: a NUL character (U+0000, in ``text`` and in
``jsonb``) and a lone UTF-16 surrogate (U+D800..U+DFFF, which JSON's ``"\\ud800"``
decodes to and UTF-8 cannot encode). Left to the database they become a 500 and a
rolled-back transaction. Two ways to deal with them, both here:

- **refuse** (every input but one): ``text_problem`` says what is wrong, ``json_parse``
  refuses a body with such text anywhere (or too deep, or with NaN/Infinity), naming the
  field, before anything is written;
- **clean** (the kill switch's reason, and what the audit log stores): ``text_clean``
  replaces each such character with U+FFFD and says what it did, so the write succeeds.

Pure Python (no Django): the panel's JSON API, its forms and the audit log share it.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

REPLACEMENT = "\ufffd"
_BAD = re.compile("[\x00\ud800-\udfff]")
JSON_MAX_DEPTH = 20


def _bad_char(ch: str) -> str | None:
    if ch == "\x00":
        return "a NUL character (U+0000)"
    if "\ud800" <= ch <= "\udfff":
        return f"a lone surrogate (U+{ord(ch):04X}, not valid Unicode)"
    return None


def text_problem(value: str) -> str | None:
    """What PostgreSQL could not store in ``value`` ("contains a NUL character (U+0000)
    at position 3"), or None when it is fine."""
    match = _BAD.search(value)
    if match is None:
        return None
    return f"contains {_bad_char(match.group())} at position {match.start()}"


@dataclass(frozen=True)
class CleanText:
    """``text`` with every unstorable character replaced; ``changes`` says what was done
    (empty when the text was stored as given)."""

    text: str
    changes: tuple[str, ...] = ()

    @property
    def cleaned(self) -> bool:
        return bool(self.changes)


def text_clean(value: str, *, max_length: int | None = None) -> CleanText:
    """``value`` with NUL characters and lone surrogates replaced by U+FFFD, and cut to
    ``max_length`` characters (ending in "…") when it is longer."""
    nul = value.count("\x00")
    surrogates = len(_BAD.findall(value)) - nul
    changes: list[str] = []
    text = value
    if nul or surrogates:
        text = _BAD.sub(REPLACEMENT, value)
        if nul:
            changes.append(f"replaced {nul} NUL character(s) with U+FFFD")
        if surrogates:
            changes.append(f"replaced {surrogates} lone surrogate(s) with U+FFFD")
    if max_length is not None and len(text) > max_length:
        changes.append(f"cut from {len(text)} to {max_length} characters")
        text = text[: max_length - 1] + "…"
    return CleanText(text, tuple(changes))


def printable(text: str, limit: int) -> str:
    """``text`` without control/format characters or lone surrogates, at most ``limit`` long."""
    raw = text.encode("utf-8", "replace").decode("utf-8")
    return "".join(c for c in raw if unicodedata.category(c)[0] != "C")[:limit]


def data_clean(value: Any) -> Any:
    """A copy of ``value`` (dicts, lists, tuples, strings, anything else as is) with every
    string, keys included, cleaned by ``text_clean``: what a JSON column can store."""
    if isinstance(value, str):
        return _BAD.sub(REPLACEMENT, value)
    if isinstance(value, dict):
        return {data_clean(k): data_clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [data_clean(v) for v in value]
    return value


class JsonInputError(ValueError):
    """A JSON body refused; ``message`` names the problem and where it is."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class JsonTooDeep(JsonInputError):
    """Nested deeper than the parser goes (Python's recursion limit)."""


def _path_text(path: tuple[str | int, ...]) -> str:
    if not path:
        return "the body"
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return f'"{out}"'


def json_problem(data: Any, *, max_depth: int = JSON_MAX_DEPTH) -> str | None:
    """The first thing in parsed JSON ``data`` that must be refused, naming its field:
    nesting deeper than ``max_depth``, a non-finite number, unstorable text (in a value or
    a key). None when all is well. Iterative: any depth is safe to check."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(data, ())]
    while stack:
        value, path = stack.pop()
        if len(path) > max_depth:
            return f"{_path_text(path[:max_depth])} is nested too deeply (max {max_depth} levels)"
        if isinstance(value, float) and not math.isfinite(value):
            return f"{_path_text(path)} is not a finite number ({value}): send a number or string"
        if isinstance(value, str):
            problem = text_problem(value)
            if problem:
                return f"{_path_text(path)} {problem}: remove it"
        elif isinstance(value, dict):
            for key, item in reversed(list(value.items())):
                problem = text_problem(key)
                if problem:
                    return f"a field name in {_path_text(path)} {problem}: remove it"
                stack.append((item, (*path, key)))
        elif isinstance(value, list):
            stack.extend((item, (*path, i)) for i, item in reversed(list(enumerate(value))))
    return None


def json_loads(raw: bytes) -> Any:
    """Parse ``raw`` as JSON (UTF-8). Raises JsonInputError saying what is wrong:
    not UTF-8, malformed, or nested too deeply for the parser."""
    try:
        return json.loads(raw or b"")
    except RecursionError:
        raise JsonTooDeep(f"the body is nested too deeply (max {JSON_MAX_DEPTH} levels)") from None
    except UnicodeDecodeError as exc:
        raise JsonInputError(f"the body is not UTF-8: {exc.reason} at byte {exc.start}") from None
    except ValueError as exc:
        raise JsonInputError(f"malformed JSON: {exc}") from None


def json_parse(raw: bytes, *, max_depth: int = JSON_MAX_DEPTH) -> Any:
    """``json_loads``, then ``json_problem``: raises JsonInputError naming the field."""
    data = json_loads(raw)
    problem = json_problem(data, max_depth=max_depth)
    if problem:
        raise JsonInputError(problem)
    return data


def json_members(raw: bytes) -> dict[str, str]:
    """The members of a top-level JSON object as raw JSON texts, without parsing them
    (``{"a": [[...]], "b": "x"}`` -> ``{"a": "[[...]]", "b": '"x"'}``).

    For the kill switch: its "reason" and "confirm" can be read even when another member
    is too deep for the parser. Raises JsonInputError when ``raw`` is not an object.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JsonInputError(f"the body is not UTF-8: {exc.reason} at byte {exc.start}") from None
    decoder = json.JSONDecoder()
    i = _skip_ws(text, 0)
    if i >= len(text) or text[i] != "{":
        raise JsonInputError("the body must be a JSON object")
    members: dict[str, str] = {}
    i = _skip_ws(text, i + 1)
    if i < len(text) and text[i] == "}":
        return members
    while True:
        try:
            key, i = decoder.raw_decode(text, i)
        except ValueError as exc:
            raise JsonInputError(f"malformed JSON: {exc}") from None
        i = _skip_ws(text, i)
        if not isinstance(key, str) or i >= len(text) or text[i] != ":":
            raise JsonInputError(f"malformed JSON: expected a member name and ':' at {i}")
        start = _skip_ws(text, i + 1)
        end = _value_end(text, start)
        members[key] = text[start:end]
        i = _skip_ws(text, end)
        if i < len(text) and text[i] == ",":
            i = _skip_ws(text, i + 1)
            continue
        if i < len(text) and text[i] == "}":
            return members
        raise JsonInputError(f"malformed JSON: expected ',' or '}}' at {i}")


def _skip_ws(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    return i


def _value_end(text: str, i: int) -> int:
    """Where the JSON value starting at ``i`` ends (brackets counted, strings skipped)."""
    depth = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            i += 1
            if depth == 0:
                return i
            continue
        if ch in "[{":
            depth += 1
        elif ch in "]}":
            if depth == 0:
                return i
            depth -= 1
            if depth == 0:
                return i + 1
        elif ch == "," and depth == 0:
            return i
        i += 1
    if depth:
        raise JsonInputError("malformed JSON: a bracket is not closed")
    return i
