"""``getDefaultConfigXML`` and ``setConfigXML``: the legacy client's ``config.xml``.

``setConfigXML`` stores a document per live meeting and answers a token; a ``join`` that
names a ``configToken`` must name one of its meeting's (:meth:`ConfigCalls.config_xml`).
The documents are dropped when their meeting ends; at most
:data:`MAX_CONFIGS_PER_MEETING` are kept per meeting, the oldest going first.
"""

from __future__ import annotations

import secrets
import string
from urllib.parse import unquote_plus

import meetplatform
from meetplatform import events as ev
from meetplatform.config import Settings
from meetplatform.model import Meeting
from meetplatform.registry import Registry
from meetplatform.xmlapi import errors
from meetplatform.xmlapi import params as P
from meetplatform.xmlapi.pipeline import Answer, ApiPipeline, CallContext, RawXml
from meetplatform.xmlapi.render import escape

MAX_CONFIGS_PER_MEETING = 100
_TOKEN_ALPHABET = string.ascii_lowercase + string.digits


def _random_token(length: int = 8) -> str:
    return "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(length))


class ConfigCalls:
    """The config.xml calls and the documents ``setConfigXML`` stored."""

    def __init__(self, settings: Settings, registry: Registry) -> None:
        self._settings = settings
        self._registry = registry
        self._public_url = settings.public_url.rstrip("/")
        #: setConfigXML documents: internal meeting id -> token -> config.xml.
        self._configs: dict[str, dict[str, str]] = {}
        registry.subscribe(self._on_event)

    def register(self, api: ApiPipeline) -> None:
        api.add_call("getDefaultConfigXML", self.get_default_config_xml)
        api.add_call("setConfigXML", self.set_config_xml,
                     checksum_error=errors.config_checksum_error)

    def _on_event(self, event: ev.Event) -> None:
        if isinstance(event, ev.MeetingEnded):
            self._configs.pop(event.meeting.internal_id, None)

    def config_xml(self, meeting: Meeting, token: str) -> str | None:
        """A document stored with ``setConfigXML`` for this meeting, by its token."""
        return self._configs.get(meeting.internal_id, {}).get(token)

    def get_default_config_xml(self, ctx: CallContext) -> Answer:
        return RawXml(self.default_config_xml(), "configXML")

    def default_config_xml(self) -> str:
        """The client configuration document ``getDefaultConfigXML`` answers with."""
        ws = "ws" + self._public_url[4:] if self._public_url.startswith("http") else ""
        ice = "".join(
            f'<iceServer urls="{escape(" ".join(server.urls))}"/>'
            for server in self._settings.ice_servers)
        return (
            '<?xml version="1.0" encoding="UTF-8"?>'
            f'<config><version>{escape(meetplatform.__version__)}</version>'
            f'<server name="{escape(self._settings.server_name)}" '
            f'url="{escape(self._public_url)}"/>'
            f'<application uri="{escape(ws)}/ws" host="{escape(self._public_url)}/client/join"/>'
            f'<api url="{escape(self._settings.api_url)}"/>'
            f'<iceServers>{ice}</iceServers>'
            '</config>'
        )

    def set_config_xml(self, ctx: CallContext) -> Answer:
        config = ctx.params.raw("configXML")
        if not config:
            raise errors.missing_config_xml()
        meeting_id = ctx.params.raw("meetingID")
        if not meeting_id or not meeting_id.strip():
            raise errors.missing_meeting_id_legacy()
        meeting = self._registry.get_meeting(meeting_id)
        if meeting is None:
            raise errors.invalid_meeting_identifier()
        try:
            decoded = unquote_plus(config, errors="strict")
        except UnicodeDecodeError:
            raise errors.bad_config_xml() from None
        P.parse_config_xml(decoded)
        configs = self._configs.setdefault(meeting.internal_id, {})
        if len(configs) >= MAX_CONFIGS_PER_MEETING:
            configs.pop(next(iter(configs)))
        token = _random_token()
        configs[token] = decoded
        return [("configToken", token)]
