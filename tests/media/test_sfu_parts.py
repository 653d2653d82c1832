"""Pure parts of the SFU backend: reading what an offer sends."""

from __future__ import annotations

from meetplatform.media.sfu import Section, sdp_sections

_LINES = [
    "v=0", "o=- 1 2 IN IP4 127.0.0.1", "s=-", "t=0 0",
    "m=audio 9 UDP/TLS/RTP/SAVPF 111", "a=mid:0", "a=sendonly",
    "m=video 9 UDP/TLS/RTP/SAVPF 96", "a=mid:1", "a=sendonly",
    "m=video 9 UDP/TLS/RTP/SAVPF 96", "a=mid:2", "a=inactive",
    "m=video 0 UDP/TLS/RTP/SAVPF 96", "a=mid:3", "a=sendonly",
    "m=application 9 UDP/DTLS/SCTP webrtc-datachannel", "a=mid:4",
]
OFFER = "\r\n".join(_LINES) + "\r\n"


def test_sections_say_what_an_offer_sends() -> None:
    assert sdp_sections(OFFER) == [
        Section("audio", "0", True), Section("video", "1", True),
        Section("video", "2", False), Section("video", "3", False),
        Section("application", "4", True)]


def test_an_sdp_without_media_has_no_sections() -> None:
    assert sdp_sections("v=0\r\ns=-\r\n") == []
