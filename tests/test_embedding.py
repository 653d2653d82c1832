"""Origins and the embed snippet, shared by the embed page, the JSON:API and the socket."""

from __future__ import annotations

from meetplatform.embedding import normalise_origin


def test_origins_are_normalised() -> None:
    """Origins compare by scheme, host and port, ignoring case and default ports."""
    assert normalise_origin("HTTPS://Meet.Example:443/x") == "https://meet.example"
    assert normalise_origin("http://h:8080") == "http://h:8080"
    assert normalise_origin("null") is None
    assert normalise_origin("http://h:99999") is None
