"""apps.core.text: what PostgreSQL cannot store, refused or cleaned (pure, no database)."""

from __future__ import annotations

import json

import pytest

from apps.core.text import (
    JSON_MAX_DEPTH,
    JsonInputError,
    JsonTooDeep,
    data_clean,
    json_loads,
    json_members,
    json_parse,
    json_problem,
    text_clean,
    text_problem,
)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("fine ünïcode ✓ 𝄞", None),
        ("a\x00b", "contains a NUL character (U+0000) at position 1"),
        ("ab\ud800", "contains a lone surrogate (U+D800, not valid Unicode) at position 2"),
        ("\udfff", "contains a lone surrogate (U+DFFF, not valid Unicode) at position 0"),
    ],
)
def test_text_problem_names_the_character_and_where(value, problem):
    assert text_problem(value) == problem


def test_text_clean_when_clean_then_unchanged_and_says_nothing():
    cleaned = text_clean("all good", max_length=100)
    assert (cleaned.text, cleaned.changes, cleaned.cleaned) == ("all good", (), False)


def test_text_clean_when_nul_surrogates_and_too_long_then_replaced_cut_and_said():
    # Act
    cleaned = text_clean("a\x00b\ud800c\x00" + "x" * 20, max_length=10)

    # Assert
    assert cleaned.text == "a\ufffdb\ufffdc\ufffdxxx…"
    assert len(cleaned.text) == 10
    assert cleaned.changes == (
        "replaced 2 NUL character(s) with U+FFFD",
        "replaced 1 lone surrogate(s) with U+FFFD",
        "cut from 26 to 10 characters",
    )
    cleaned.text.encode("utf-8")  # storable now


def test_data_clean_cleans_keys_and_values_at_any_depth_and_leaves_the_rest():
    data = {"k\x00": ["v\ud800", {"n": 1, "f": 1.5, "none": None}], "ok": ("t", True)}
    assert data_clean(data) == {
        "k\ufffd": ["v\ufffd", {"n": 1, "f": 1.5, "none": None}],
        "ok": ["t", True],
    }


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"reason": "a\\u0000"}', '"reason" contains a NUL character'),
        (b'{"a": {"b": ["x", "\\ud800"]}}', '"a.b[1]" contains a lone surrogate'),
        (b'{"a\\u0000": 1}', "a field name in the body contains a NUL"),
        (b'{"n": NaN}', '"n" is not a finite number (nan)'),
        (b'{"n": [Infinity]}', '"n[0]" is not a finite number (inf)'),
        (b'{"n": 1e999}', '"n" is not a finite number (inf)'),
        (b"[" * 25 + b"]" * 25, f"nested too deeply (max {JSON_MAX_DEPTH} levels)"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b"{not json", "malformed JSON"),
        (b'{"a": "\xff"}', "not UTF-8"),
    ],
)
def test_json_parse_refuses_naming_the_field(raw, message):
    with pytest.raises(JsonInputError) as caught:
        json_parse(raw)
    assert message in caught.value.message


def test_json_parse_when_fine_then_the_data():
    assert json_parse(b'{"a": [1, "2", {"b": null}], "c": 1.5}') == {
        "a": [1, "2", {"b": None}],
        "c": 1.5,
    }
    assert json_problem([[[]]], max_depth=3) is None


def test_json_loads_when_too_deep_then_json_too_deep():
    with pytest.raises(JsonTooDeep):
        json_loads(b"[" * 100_000 + b"]" * 100_000)


def test_json_members_when_a_member_is_too_deep_then_the_others_still_read():
    # Arrange
    deep = b"[" * 100_000 + b"]" * 100_000
    raw = (
        b'{ "junk" : '
        + deep
        + b', "reason": "a \\"quoted\\" ] } , text", "confirm": true, "o": {"x": [1, "]"]},'
        b' "n": NaN, "s": "" }'
    )

    # Act
    members = json_members(raw)

    # Assert
    assert json.loads(members["reason"]) == 'a "quoted" ] } , text'
    assert json.loads(members["confirm"]) is True
    assert json.loads(members["o"]) == {"x": [1, "]"]}
    assert members["n"].strip() == "NaN"
    assert json.loads(members["s"]) == ""
    assert len(members["junk"]) == len(deep)
    assert json_members(b" {} ") == {}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"[1]", "must be a JSON object"),
        (b"", "must be a JSON object"),
        (b'{"a": [[1, 2]', "not closed"),
        (b'{"a" 1}', "expected a member name"),
        (b'{"a": 1 "b": 2}', "expected ','"),
        (b"{1: 2}", "malformed JSON"),
        (b'{"a": "\xff"}', "not UTF-8"),
    ],
)
def test_json_members_when_not_an_object_then_refused(raw, message):
    with pytest.raises(JsonInputError) as caught:
        json_members(raw)
    assert message in caught.value.message
