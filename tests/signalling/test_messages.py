"""The pure message functions: decoding, validation, encoding, sanitising, rate limiting."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meetplatform.signalling import messages as msg


def test_a_well_formed_request_is_decoded() -> None:
    """A JSON object with type, id and data becomes a Request."""
    request = msg.decode_request(b'{"type":"chat","id":"c-1","data":{"text":"hi"}}')
    assert request == msg.Request("chat", "c-1", {"text": "hi"})


def test_id_and_data_are_optional_and_integer_ids_are_kept() -> None:
    """A request may omit id and data; numeric ids come back as integers."""
    assert msg.decode_request(b'{"type":"leave"}') == msg.Request("leave", None, {})
    assert msg.decode_request(b'{"type":"ping","id":7}').id == 7


@pytest.mark.parametrize("payload, code, request_id", [
    (b"not json", "invalid", None),
    (b"[1,2]", "invalid", None),
    (b'{"id":"x"}', "invalid", "x"),
    (b'{"type":"chat","id":"x","data":[1]}', "invalid", "x"),
    (b'{"type":"chat","id":true}', "invalid", None),
    (b'{"type":"chat","id":"' + b"x" * 65 + b'"}', "invalid", None),
    (b'{"type":"ping","data":{"ts":NaN}}', "invalid", None),
    (b"\xff\xfe", "invalid", None),
])
def test_unreadable_frames_are_refused_with_invalid(payload: bytes, code: str,
                                                     request_id: str | None) -> None:
    """Frames that are not a readable envelope give `invalid`, with the id when readable."""
    with pytest.raises(msg.EnvelopeError) as caught:
        msg.decode_request(payload)
    assert caught.value.code == code and caught.value.request_id == request_id


@pytest.mark.parametrize("number", ["1" * 300, "-" + "9" * 40, str(2**53 + 1), "1e400",
                                    "-1e999"],
                         ids=["300 digits", "-40 digits", "2**53+1", "1e400", "-1e999"])
@pytest.mark.parametrize("where", ["ts", "sdpMLineIndex", "unknownField"])
def test_numbers_out_of_range_anywhere_in_a_frame_are_refused_with_invalid(
        number: str, where: str) -> None:
    """A number beyond the I-JSON range in any field gives `invalid` with the id and type."""
    payload = b'{"type":"ping","id":"p-1","data":{"' + where.encode() + b'":' + (
        number.encode() + b"}}")
    with pytest.raises(msg.EnvelopeError) as caught:
        msg.decode_request(payload)
    assert caught.value.code == "invalid" and "out of range" in caught.value.message
    assert (caught.value.request_id, caught.value.request_type) == ("p-1", "ping")


def test_numbers_at_the_edge_of_the_range_are_kept() -> None:
    """Integers of magnitude 2**53 and large finite floats still decode."""
    edge = str(2**53).encode()
    payload = b'{"type":"ping","data":{"ts":' + edge + b',"a":-' + edge + b',"b":1e308}}'
    assert msg.decode_request(payload).data == {"ts": 2**53, "a": -(2**53), "b": 1e308}


@pytest.mark.parametrize("ts", [10**300, -(10**300), 2**53 + 1, float("inf")],
                         ids=["10**300", "-10**300", "2**53+1", "inf"])
def test_ping_refuses_a_ts_out_of_range_even_when_built_without_decoding(ts: float) -> None:
    """`parse_ping` itself refuses huge integers instead of overflowing in isfinite."""
    with pytest.raises(msg.MessageError) as caught:
        msg.parse_ping({"ts": ts})
    assert caught.value.code == "invalid"


def test_binary_and_oversized_frames_are_refused() -> None:
    """Binary frames are invalid and messages over 64 KiB are tooLarge."""
    with pytest.raises(msg.EnvelopeError) as binary:
        msg.decode_request(b'{"type":"ping"}', is_binary=True)
    assert binary.value.code == "invalid"
    big = json.dumps({"type": "chat", "data": {"text": "x" * 70_000}}).encode()
    with pytest.raises(msg.EnvelopeError) as large:
        msg.decode_request(big)
    assert large.value.code == "tooLarge"


@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_escape_as_anything_but_an_envelope_error(data: bytes) -> None:
    """Whatever bytes arrive, decoding returns a Request or raises EnvelopeError."""
    try:
        msg.decode_request(data)
    except msg.EnvelopeError:
        pass


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c,
                                                                         max_size=4)),
       st.sampled_from(sorted(msg.PARSERS)))
def test_any_json_data_validates_or_is_refused_with_a_message_error(data: object,
                                                                   kind: str) -> None:
    """Every request type's validator rejects bad data with a MessageError, never a crash."""
    envelope = json.dumps({"type": kind, "data": data}).encode()
    try:
        request = msg.decode_request(envelope)
        msg.parse(request)
    except msg.MessageError as e:
        assert e.code == "invalid" and e.message


def test_unknown_types_are_refused() -> None:
    """A request type the protocol doesn't have gives unknownType."""
    with pytest.raises(msg.MessageError) as caught:
        msg.parse(msg.Request("fly", None, {}))
    assert caught.value.code == "unknownType"


def test_chat_text_is_trimmed_and_bounded() -> None:
    """Chat text is 1..500 characters after trimming."""
    assert msg.parse_chat({"text": "  hi  "}) == "hi"
    assert msg.parse_chat({"text": "é" * 500}) == "é" * 500
    for bad in ({"text": "   "}, {"text": "x" * 501}, {"text": 5}, {}):
        with pytest.raises(msg.MessageError):
            msg.parse_chat(bad)


def test_media_accepts_any_subset_of_booleans() -> None:
    """media takes any subset of its five flags, each a boolean."""
    assert msg.parse_media({"muted": False, "video": True}) == msg.Media(muted=False,
                                                                        video=True)
    with pytest.raises(msg.MessageError):
        msg.parse_media({"muted": "no"})


def test_role_must_be_moderator_or_viewer() -> None:
    """role needs a userId and one of the two BBB roles."""
    assert msg.parse_role({"userId": "w_1", "role": "MODERATOR"}) == ("w_1", "MODERATOR")
    with pytest.raises(msg.MessageError):
        msg.parse_role({"userId": "w_1", "role": "ADMIN"})


def test_signal_keeps_only_validated_fields() -> None:
    """A relayed signal carries the description and candidate fields and nothing else."""
    signal = msg.parse_signal({
        "to": "w_b",
        "description": {"type": "offer", "sdp": "v=0", "extra": 1},
        "candidate": {"candidate": "candidate:1 1 udp 1 1.2.3.4 5 typ host", "sdpMid": "0",
                      "sdpMLineIndex": 0, "evil": "x"},
        "from": "w_spoofed",
    })
    assert signal.to == "w_b"
    assert signal.relay == {
        "description": {"type": "offer", "sdp": "v=0"},
        "candidate": {"candidate": "candidate:1 1 udp 1 1.2.3.4 5 typ host", "sdpMid": "0",
                      "sdpMLineIndex": 0, "usernameFragment": None},
    }


def test_signal_end_of_candidates_and_bad_signals() -> None:
    """A null candidate is relayed; a signal with nothing or bad types is invalid."""
    assert msg.parse_signal({"to": "w_b", "candidate": None}).relay == {"candidate": None}
    for bad in ({"to": "w_b"}, {"to": "", "candidate": None},
                {"to": "w_b", "description": {"type": "hello", "sdp": "v=0"}},
                {"to": "w_b", "description": {"type": "offer", "sdp": ""}},
                {"to": "w_b", "candidate": {"candidate": "x", "sdpMLineIndex": "0"}},
                {"to": "w_b", "candidate": "x"}):
        with pytest.raises(msg.MessageError):
            msg.parse_signal(bad)


def test_error_frames_carry_id_only_when_known() -> None:
    """Errors say code and message, and echo the id and request type when there is one."""
    assert json.loads(msg.error("invalid", "bad")) == {"type": "error", "code": "invalid",
                                                       "message": "bad"}
    assert json.loads(msg.error("notAllowed", "no", 3, "mute")) == {
        "type": "error", "id": 3, "code": "notAllowed", "message": "no", "request": "mute"}
    assert json.loads(msg.ack("a", {"x": 1})) == {"type": "ack", "id": "a", "data": {"x": 1}}


def test_broken_text_is_refused_naming_where_with_the_id_when_it_is_valid() -> None:
    """A lone surrogate anywhere (valid JSON, not valid Unicode) is `invalid` with the
    JSON pointer of the string; the id and type are given back only when they are valid
    text themselves (an error frame holding them could not be sent)."""
    cases = [
        (b'{"type":"chat","id":"c1","data":{"text":"hi \\ud800"}}', "c1", "chat", "/data/text"),
        (b'{"type":"chat","id":7,"data":{"\\udc00":1}}', 7, "chat", "/data"),
        (b'{"type":"chat","id":"\\ud800","data":{}}', None, "chat", "/id"),
        (b'{"type":"\\ud800","id":"c2"}', "c2", None, "/type"),
    ]
    for payload, request_id, request_type, where in cases:
        with pytest.raises(msg.EnvelopeError) as caught:
            msg.decode_request(payload)
        error = caught.value
        assert (error.code, error.request_id, error.request_type) == (
            "invalid", request_id, request_type), payload
        assert where in error.message and "not valid Unicode" in error.message
        msg.error(error.code, error.message, error.request_id, error.request_type)  # encodes
    ok = msg.decode_request(b'{"type":"chat","data":{"text":"\\ud83d\\ude00 \\u00e9"}}')
    assert ok.data == {"text": "\U0001f600 \u00e9"}


def test_session_tokens_are_url_safe_and_bounded() -> None:
    """Only URL-safe base64 tokens up to 256 characters are looked up."""
    assert msg.valid_token("abc-DEF_123")
    assert not msg.valid_token("a b") and not msg.valid_token("") and not msg.valid_token(
        "a" * 257)


def test_token_bucket_allows_a_burst_then_limits_then_flags_abuse() -> None:
    """50/s with burst 200: the 201st message is limited; 200 more rejected is abuse."""
    bucket = msg.TokenBucket(50, 200, now=0.0)
    assert [bucket.take(0.0) for _ in range(200)] == ["ok"] * 200
    assert bucket.take(0.0) == "limited"
    assert bucket.take(1.0) == "ok"  # one second refilled 50 tokens (the debt was 1)
    for _ in range(47):
        assert bucket.take(1.0) == "ok"
    verdicts = [bucket.take(1.0) for _ in range(250)]
    assert "abuse" in verdicts and verdicts.index("abuse") == 200
