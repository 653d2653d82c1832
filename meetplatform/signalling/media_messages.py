"""The signalling protocol's media requests (``media.*``) and the meeting's media backend.

The page sends these only in a meeting whose ``joined`` snapshot says
``media.mode == "sfu"`` (docs/signalling-protocol.md, "Media through a node"):

- ``media.publish {sdp, sources: {mid: mic|camera|screen}}`` → ack ``{answer: {type, sdp}}``
- ``media.answer {seq, sdp}``: the answer to the server's ``media.offer``
- ``media.trickle {pc: publisher|subscriber, candidate}``
- ``media.configure {mid, substream?, temporal?}``: the simulcast layer of a received stream

:class:`MediaRequests` validates them (pure functions, like
:mod:`~meetplatform.signalling.messages`) and hands them to the
:class:`~meetplatform.media.sfu.SfuBackend`; a mesh meeting answers ``wrongMode``. It also
holds the hooks the hub and the protocol call: what ``joined`` says about media, whether a
``signal`` (mesh relay) or a camera is allowed. Without media nodes (``backend`` None)
every meeting is mesh.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from twisted.internet.defer import Deferred

from meetplatform.media.backend import MESH, MediaRefused, MeshBackend
from meetplatform.media.sfu import MAX_SUBSTREAM, MAX_TEMPORAL, SOURCES, SfuBackend
from meetplatform.model import Meeting, Participant
from meetplatform.signalling import messages as msg

_PCS = ("publisher", "subscriber")


def _sdp(data: Mapping[str, Any]) -> str:
    sdp = data.get("sdp")
    if not isinstance(sdp, str) or not sdp or len(sdp) > msg.MAX_SDP_CHARS:
        raise msg.invalid("'sdp' must be a non-empty SDP string")
    return sdp


def parse_publish(data: Mapping[str, Any]) -> tuple[str, dict[str, str]]:
    sources = data.get("sources", {})
    if not isinstance(sources, dict) or len(sources) > 16:
        raise msg.invalid("'sources' must be an object {mid: mic|camera|screen}")
    out: dict[str, str] = {}
    for mid, source in sources.items():
        if not isinstance(mid, str) or len(mid) > 32 or source not in SOURCES:
            raise msg.invalid("'sources' must map mids to mic, camera or screen")
        out[mid] = source
    return _sdp(data), out


def parse_answer(data: Mapping[str, Any]) -> tuple[int, str]:
    seq = data.get("seq")
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise msg.invalid("'seq' must be the offer's sequence number")
    return seq, _sdp(data)


def parse_trickle(data: Mapping[str, Any]) -> tuple[str, dict[str, Any] | None]:
    pc = data.get("pc")
    if pc not in _PCS:
        raise msg.invalid("'pc' must be publisher or subscriber")
    signal = msg.parse_signal({"to": "server", "candidate": data.get("candidate")})
    candidate = signal.relay["candidate"]
    return str(pc), candidate


def _layer(data: Mapping[str, Any], name: str, top: int) -> int | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top:
        raise msg.invalid(f"'{name}' must be an integer 0..{top}")
    return value


def parse_configure(data: Mapping[str, Any]) -> tuple[str, int | None, int | None]:
    mid = data.get("mid")
    if not isinstance(mid, str) or not mid or len(mid) > 32:
        raise msg.invalid("'mid' must be a stream's mid")
    return (mid, _layer(data, "substream", MAX_SUBSTREAM),
            _layer(data, "temporal", MAX_TEMPORAL))


class MediaRequests:
    """The media hooks of the signalling surface over the meeting's backend."""

    def __init__(self, backend: SfuBackend | None) -> None:
        self.backend = backend
        self.mesh = backend.mesh if backend is not None else MeshBackend()

    def joined_info(self, participant: Participant, resumed: bool) -> dict[str, Any]:
        if self.backend is None:
            return self.mesh.joined_info(participant, resumed)
        return self.backend.joined_info(participant, resumed)

    def is_sfu(self, meeting: Meeting) -> bool:
        return self.backend is not None and self.backend.is_sfu(meeting)

    def check_signal(self, participant: Participant) -> None:
        """Mesh offers between browsers of an SFU meeting would bypass the node (and its
        role checks): refused."""
        if self.is_sfu(participant.meeting):
            raise msg.MessageError("wrongMode", "this meeting's media go through a media "
                                                "node: use media.publish")

    def check_camera(self, participant: Participant, on: bool) -> None:
        try:
            if self.backend is None:
                self.mesh.check_camera(participant, on)
            else:
                self.backend.check_camera(participant, on)
        except MediaRefused as refused:
            raise msg.MessageError(refused.code, refused.message) from None

    def handle(self, participant: Participant, kind: str,
               data: Mapping[str, Any]) -> Deferred[dict[str, Any]] | dict[str, Any]:
        """Validate and carry out one ``media.*`` request; a dict or a Deferred of one
        (the ack's data); :class:`~meetplatform.signalling.messages.MessageError` when
        refused."""
        parsers: dict[str, Callable[[Mapping[str, Any]], Any]] = {
            "media.publish": parse_publish, "media.answer": parse_answer,
            "media.trickle": parse_trickle, "media.configure": parse_configure}
        parser = parsers.get(kind)
        if parser is None:
            raise msg.MessageError("unknownType", f"unknown request type {kind!r}")
        parser(data)  # a malformed request is refused as such, whatever the mode
        backend = self.backend
        if backend is None or not backend.is_sfu(participant.meeting):
            raise msg.MessageError("wrongMode", f"{kind} is for meetings whose media go "
                                                f"through a media node; this one is {MESH}")
        if kind == "media.answer":
            seq, answer = parse_answer(data)
            self._refusal(lambda: backend.answer(participant, seq, answer))
            return {}
        if kind == "media.publish":
            sdp, sources = parse_publish(data)
            work = self._publish(backend, participant, sdp, sources)
        elif kind == "media.trickle":
            pc, candidate = parse_trickle(data)
            work = self._empty(backend.trickle(participant, pc, candidate))
        else:
            mid, substream, temporal = parse_configure(data)
            work = self._empty(backend.configure(participant, mid, substream, temporal))
        return Deferred.fromCoroutine(self._refused(work))

    @staticmethod
    async def _publish(backend: SfuBackend, participant: Participant, sdp: str,
                       sources: dict[str, str]) -> dict[str, Any]:
        return {"answer": await backend.publish(participant, sdp, sources)}

    @staticmethod
    async def _empty(work: Coroutine[Any, Any, None]) -> dict[str, Any]:
        await work
        return {}

    @staticmethod
    async def _refused(work: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
        try:
            return await work
        except MediaRefused as refused:
            raise msg.MessageError(refused.code, refused.message) from None

    @staticmethod
    def _refusal(work: Any) -> None:
        try:
            work()
        except MediaRefused as refused:
            raise msg.MessageError(refused.code, refused.message) from None
