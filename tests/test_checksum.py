"""BBB checksum verification and signing (pure functions, no Twisted)."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meetplatform.checksum import (
    ChecksumRefused,
    checksum,
    java_url_encode,
    rebuilt_form_query,
    sign_query,
    split_checksum,
    verify,
    verify_form,
)
from meetplatform.config import ALL_CHECKSUM_ALGORITHMS

SECRET = "639259d4-9dd8-4b25-bf01-95f9567eaf4b"
QUERY = "name=Test+Meeting&meetingID=abc123&attendeePW=111222&moderatorPW=333444"
WORKED = {
    "sha1": "1fcbb0c4fc1f039f73aa6d697d2db9ba7f803f17",
    "sha256": "da9185f7f333cfdfcd6eeac32dca3777510c4c436020d8b887ba5515bd1d189e",
    "sha384": "891ac633df39d0a1b4f8d597f3e190833216c4b29c4fb51ea3ca72757eeb958d6e7b49a845cf29f5c"
              "6019c7d29d029d1",
    "sha512": "de73ad61d11a5c801b68d4bd6ec5248546085cefb0b25c85f3c46249ea93a3a4b120f92c0a8a58d75"
              "12cb77821884951a3b01245f3435dbbef49fff3cc3988b4",
}


@pytest.mark.parametrize("algorithm", sorted(WORKED))
def test_worked_examples_of_the_research_notes(algorithm: str) -> None:
    """The documented create example produces the documented checksum with each algorithm."""
    assert checksum("create", QUERY, SECRET, algorithm) == WORKED[algorithm]


@pytest.mark.parametrize("algorithm", sorted(WORKED))
def test_worked_examples_verify(algorithm: str) -> None:
    """A request carrying the documented checksum verifies, whichever algorithm it used."""
    raw = f"{QUERY}&checksum={WORKED[algorithm]}".encode()
    verify("create", raw, SECRET, ALL_CHECKSUM_ALGORITHMS)


def test_empty_query_example() -> None:
    """getMeetings with no parameters is signed over the call name and the secret only."""
    assert checksum("getMeetings", "", SECRET, "sha1") == "2027baa7771026e9e93392f55031535d1444c41f"
    verify("getMeetings", b"checksum=2027baa7771026e9e93392f55031535d1444c41f", SECRET, ["sha1"])


def test_upper_case_hex_is_accepted() -> None:
    """Checksums compare case-insensitively, as bbb-web's equalsIgnoreCase does."""
    raw = f"{QUERY}&checksum={WORKED['sha256'].upper()}".encode()
    verify("create", raw, SECRET, ALL_CHECKSUM_ALGORITHMS)


def test_checksum_may_come_first_or_in_the_middle() -> None:
    """The checksum pair is taken out wherever it stands in the query."""
    value = checksum("join", "a=1&b=2", SECRET, "sha1")
    verify("join", f"checksum={value}&a=1&b=2".encode(), SECRET, ["sha1"])
    verify("join", f"a=1&checksum={value}&b=2".encode(), SECRET, ["sha1"])


def test_leading_ampersand_before_checksum_is_valid() -> None:
    """``call?&checksum=...`` verifies as a call without parameters."""
    value = checksum("getMeetings", "", SECRET, "sha1")
    verify("getMeetings", f"&checksum={value}".encode(), SECRET, ["sha1"])


def test_raw_query_is_hashed_as_received() -> None:
    """The raw bytes count: ``%20`` and ``+`` are different queries to the checksum."""
    plus = checksum("create", "name=a+b", SECRET, "sha1")
    verify("create", f"name=a+b&checksum={plus}".encode(), SECRET, ["sha1"])
    with pytest.raises(ChecksumRefused):
        verify("create", f"name=a%20b&checksum={plus}".encode(), SECRET, ["sha1"])


def test_duplicate_checksum_is_refused() -> None:
    """Two checksum parameters are refused even when both carry the right value."""
    value = checksum("getMeetings", "", SECRET, "sha1")
    with pytest.raises(ChecksumRefused, match="more than one"):
        verify("getMeetings", f"checksum={value}&checksum={value}".encode(), SECRET, ["sha1"])


def test_missing_checksum_is_refused() -> None:
    """A call without a checksum parameter does not verify."""
    with pytest.raises(ChecksumRefused, match="no checksum"):
        verify("getMeetings", b"a=1", SECRET, ["sha1"])


def test_algorithm_must_be_allowed() -> None:
    """A sha1 checksum is refused when the operator allows only sha256 and up."""
    value = checksum("getMeetings", "", SECRET, "sha1")
    with pytest.raises(ChecksumRefused):
        verify("getMeetings", f"checksum={value}".encode(), SECRET, ["sha256", "sha512"])


def test_unknown_length_and_wrong_secret_are_refused() -> None:
    """A checksum of no known length, or made with another secret, does not verify."""
    with pytest.raises(ChecksumRefused):
        verify("getMeetings", b"checksum=abc", SECRET, ALL_CHECKSUM_ALGORITHMS)
    other = checksum("getMeetings", "", "another-secret", "sha256")
    with pytest.raises(ChecksumRefused):
        verify("getMeetings", f"checksum={other}".encode(), SECRET, ALL_CHECKSUM_ALGORITHMS)


def test_checksum_is_bound_to_the_call_name() -> None:
    """A checksum made for one call does not verify another."""
    value = checksum("isMeetingRunning", "meetingID=x", SECRET, "sha1")
    with pytest.raises(ChecksumRefused):
        verify("end", f"meetingID=x&checksum={value}".encode(), SECRET, ["sha1"])


def test_split_keeps_empty_parts() -> None:
    """Taking the checksum out keeps the rest byte for byte, empty parts included."""
    assert split_checksum(b"a=1&&checksum=ff&") == (b"ff", b"a=1&&")


def test_java_url_encoding() -> None:
    """Values are re-encoded like Java's URLEncoder: space to +, * kept, ~ encoded."""
    assert java_url_encode("a b*~é/") == "a+b*%7E%C3%A9%2F"


def test_rebuilt_form_query_sorts_names() -> None:
    """bbb-web's POST form string: names sorted, checksum left out, repeats kept in order."""
    pairs = [("name", "My room"), ("meetingID", "m1"), ("checksum", "x"), ("b", "2"),
             ("b", "1")]
    assert rebuilt_form_query(pairs) == "b=2&b=1&meetingID=m1&name=My+room"


def test_form_body_verifies_with_rebuilt_string() -> None:
    """A form body signed the bbb-web way (sorted and re-encoded) verifies."""
    pairs = [("name", "My room~"), ("meetingID", "m1")]
    value = checksum("create", "meetingID=m1&name=My+room%7E", SECRET, "sha256")
    body = (urlencode(pairs) + "&checksum=" + value).encode()
    verify_form("create", body, pairs + [("checksum", value)], SECRET, ALL_CHECKSUM_ALGORITHMS)


def test_form_body_verifies_with_raw_body() -> None:
    """A form body signed over its own raw bytes (as some load balancers do) verifies."""
    raw = "name=My%20room&meetingID=m1"
    value = checksum("create", raw, SECRET, "sha1")
    pairs = [("name", "My room"), ("meetingID", "m1"), ("checksum", value)]
    verify_form("create", f"{raw}&checksum={value}".encode(), pairs, SECRET, ["sha1"])


def test_form_body_with_wrong_or_repeated_checksum_is_refused() -> None:
    """A form body with a bad checksum, none, or two of them does not verify."""
    pairs = [("meetingID", "m1")]
    with pytest.raises(ChecksumRefused):
        verify_form("create", b"meetingID=m1&checksum=00", pairs + [("checksum", "00")],
                    SECRET, ALL_CHECKSUM_ALGORITHMS)
    with pytest.raises(ChecksumRefused):
        verify_form("create", b"meetingID=m1", pairs, SECRET, ALL_CHECKSUM_ALGORITHMS)
    value = checksum("create", "meetingID=m1", SECRET, "sha1")
    with pytest.raises(ChecksumRefused):
        verify_form("create", b"", pairs + [("checksum", value), ("checksum", value)],
                    SECRET, ALL_CHECKSUM_ALGORITHMS)


def test_sign_query_round_trip() -> None:
    """A query signed with sign_query verifies, with or without other parameters."""
    verify("getMeetings", sign_query("getMeetings", "", SECRET).encode(), SECRET, ["sha256"])
    signed = sign_query("create", QUERY, SECRET, "sha512")
    verify("create", signed.encode(), SECRET, ["sha512"])


@given(
    st.lists(st.tuples(st.text(min_size=1, max_size=8), st.text(max_size=12)), max_size=6),
    st.sampled_from(sorted(WORKED)),
)
def test_any_encoded_query_round_trips(pairs: list[tuple[str, str]], algorithm: str) -> None:
    """Whatever the parameters, a client's signed query verifies and a tampered one does not."""
    pairs = [(k, v) for k, v in pairs if k != "checksum"]
    query = urlencode(pairs)
    signed = sign_query("create", query, SECRET, algorithm).encode()
    verify("create", signed, SECRET, ALL_CHECKSUM_ALGORITHMS)
    with pytest.raises(ChecksumRefused):
        verify("create", b"x=1&" + signed, SECRET, ALL_CHECKSUM_ALGORITHMS)
