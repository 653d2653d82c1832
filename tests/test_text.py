"""The service-wide text rule: broken Unicode is refused with the field it was found in."""

from __future__ import annotations

import pytest

from meetplatform import text


def test_lone_surrogates_are_refused_wherever_they_are() -> None:
    with pytest.raises(text.BadText) as caught:
        text.loads_json(b'{"a": [1, {"name": "Eve\\ud800"}]}', where="body")
    assert caught.value.where == "body/a/1/name"
    assert "not valid Unicode" in caught.value.message
    with pytest.raises(text.BadText):
        text.loads_json(b'{"\\udc00": 1}')
    with pytest.raises(text.BadText):
        text.loads_json('"\\udfff"')


def test_paired_surrogates_and_plain_text_are_accepted() -> None:
    assert text.loads_json(b'{"n": "\\ud83d\\ude00 \\u00e9"}') == {"n": "\U0001f600 \u00e9"}
    assert text.loads_json("[\"caf\u00e9\"]") == ["caf\u00e9"]
    assert text.check("plain") == "plain"


def test_bad_utf8_is_refused() -> None:
    for raw in (b"\xff", b'"\xed\xa0\x80"', b"caf\xe9"):
        with pytest.raises(text.BadText):
            text.loads_json(raw)
    with pytest.raises(text.BadText):
        text.decode(b"\xc3", where="fullName")


def test_non_json_constants_are_not_json() -> None:
    with pytest.raises(ValueError):
        text.loads_json(b"[NaN]")


def test_check_names_the_field() -> None:
    with pytest.raises(text.BadText) as caught:
        text.check("x\ud800", where="displayName")
    assert caught.value.where == "displayName"
    assert "displayName" in str(caught.value)


def test_forms_are_refused_naming_the_field_not_repaired() -> None:
    assert text.parse_form(b"a=caf%C3%A9&b=&c=x+y") == [("a", "caf\u00e9"), ("b", ""),
                                                         ("c", "x y")]
    for raw, where in ((b"ok=1&name=Eve%ED%A0%80", "name"), (b"name=%FF", "name"),
                       (b"%FF=1", None), (b"name=\xff", None)):
        with pytest.raises(text.BadText) as caught:
            text.parse_form(raw)
        assert caught.value.where == where, raw
        assert "not valid Unicode" in caught.value.message
    with pytest.raises(ValueError):
        text.parse_form(b"a=1&b=2&c=3", max_num_fields=2)
