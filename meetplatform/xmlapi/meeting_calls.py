"""The meeting calls: ``create``, ``join``, ``end``, ``isMeetingRunning``,
``getMeetingInfo`` and ``getMeetings``, over the live registry.

Registry refusals are mapped to BBB's messageKeys here, at the edge. A redirecting ``join``
answers its errors with a redirect, as bbb-web does (registered with
``redirects_errors``).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from urllib.parse import quote

from meetplatform.config import Settings
from meetplatform.model import (
    EndReason,
    GuestDeniedAccess,
    GuestStatus,
    IdNotUnique,
    MaxParticipantsReached,
    Meeting,
    MeetingForciblyEnded,
    NonUniqueVoiceBridge,
    ParentMeetingNotFound,
    Role,
)
from meetplatform.registry import Registry
from meetplatform.xmlapi import errors
from meetplatform.xmlapi import params as P
from meetplatform.xmlapi.meeting_xml import MeetingRenderer
from meetplatform.xmlapi.pipeline import (
    Answer,
    ApiPipeline,
    CallContext,
    Nodes,
    Prerendered,
    Redirect,
)
from meetplatform.xmlapi.render import Items, Raw

#: ``(meeting, token)`` -> the config.xml ``setConfigXML`` stored under that token, or None.
ConfigLookup = Callable[[Meeting, str], "str | None"]


def same_secret(given: str, expected: str) -> bool:
    """Compare a password in constant time."""
    return secrets.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


class MeetingCalls:
    """The meeting calls; :meth:`register` adds them to the pipeline."""

    def __init__(self, settings: Settings, registry: Registry, renderer: MeetingRenderer,
                 config_xml: ConfigLookup) -> None:
        self._registry = registry
        self._renderer = renderer
        self._config_xml = config_xml
        self._public_url = settings.public_url.rstrip("/")
        self._client_url = self._public_url + "/client/join?sessionToken="

    def register(self, api: ApiPipeline) -> None:
        api.add_call("create", self.create)
        api.add_call("end", self.end)
        api.add_call("isMeetingRunning", self.is_meeting_running)
        api.add_call("getMeetingInfo", self.get_meeting_info)
        api.add_call("getMeetings", self.get_meetings)
        api.add_call("join", self.join, redirects_errors=True)

    def create(self, ctx: CallContext) -> Answer:
        documents = P.parse_modules(ctx.xml_body) if ctx.xml_body else None
        spec = P.parse_create(ctx.params, default_logout_url=self._public_url + "/",
                              documents=documents)
        try:
            meeting, created = self._registry.create_meeting(spec)
        except IdNotUnique:
            raise errors.id_not_unique() from None
        except NonUniqueVoiceBridge:
            raise errors.non_unique_voice_bridge() from None
        except ParentMeetingNotFound:
            raise errors.parent_meeting_does_not_exist() from None
        mspec = meeting.spec
        nodes: Nodes = [
            ("meetingID", mspec.meeting_id),
            ("internalMeetingID", meeting.internal_id),
            ("parentMeetingID", mspec.parent_meeting_id if mspec.is_breakout and
             mspec.parent_meeting_id else "bbb-none"),
            ("attendeePW", mspec.attendee_pw),
            ("moderatorPW", mspec.moderator_pw),
            ("createTime", meeting.create_time),
            ("voiceBridge", meeting.voice_bridge),
            ("dialNumber", mspec.dial_number),
            ("createDate", meeting.create_date),
            ("hasUserJoined", meeting.has_user_joined),
            ("duration", mspec.duration),
            ("hasBeenForciblyEnded", meeting.forcibly_ended),
        ]
        if created:
            nodes += [("messageKey", None), ("message", None)]
        else:
            nodes += [("messageKey", "duplicateWarning"),
                      ("message", ("This conference was already in existence and may "
                                  "currently be in progress."))]
        return nodes

    def _live_meeting(self, params: P.Params) -> Meeting:
        meeting = self._registry.get_meeting(P.require_meeting_id(params))
        if meeting is None:
            raise errors.not_found_meeting()
        return meeting

    def join(self, ctx: CallContext) -> Answer:
        request = P.parse_join(ctx.params)
        meeting = self._registry.get_meeting(request.meeting_id)
        if meeting is None:
            ended = self._registry.recently_ended(request.meeting_id)
            if ended is not None and ended.forcibly_ended:
                raise errors.meeting_forcibly_ended()
            raise errors.invalid_meeting_identifier()
        if request.create_time is not None:
            try:
                create_time = int(request.create_time.strip())
            except ValueError:
                create_time = -1
            if create_time != meeting.create_time:
                raise errors.mismatch_create_time()
        role = request.role or self._role_from_password(meeting, request.password)
        if (request.config_token is not None
                and self._config_xml(meeting, request.config_token) is None):
            raise errors.no_config_found()
        try:
            seat = self._registry.issue_seat(
                meeting,
                full_name=request.full_name,
                role=role,
                external_user_id=request.user_id,
                guest=request.guest,
                avatar_url=request.avatar_url,
                userdata=request.userdata,
            )
        except MaxParticipantsReached:
            raise errors.max_participants_reached() from None
        except GuestDeniedAccess:
            raise errors.guest_denied_access() from None
        except MeetingForciblyEnded:
            raise errors.meeting_forcibly_ended() from None
        url = self._client_url + quote(seat.token, safe="")
        if request.redirect:
            return Redirect(url)
        if seat.guest_status is GuestStatus.WAIT:
            key, message = "guestWait", "Guest waiting for approval to join meeting."
        else:
            key, message = "successfullyJoined", "You have joined successfully."
        return [
            ("messageKey", key),
            ("message", message),
            ("meeting_id", meeting.internal_id),
            ("user_id", seat.user_id),
            ("auth_token", seat.auth_token),
            ("session_token", seat.token),
            ("guestStatus", seat.guest_status.value),
            ("url", url),
        ]

    @staticmethod
    def _role_from_password(meeting: Meeting, password: str) -> Role:
        if not password:
            raise errors.role_or_password_required()
        spec = meeting.spec
        if not (spec.moderator_pw and spec.attendee_pw):
            raise errors.role_required_without_passwords()
        is_moderator = same_secret(password, spec.moderator_pw)
        is_viewer = same_secret(password, spec.attendee_pw)
        if is_moderator:
            return Role.MODERATOR
        if is_viewer:
            return Role.VIEWER
        raise errors.invalid_join_password()

    def end(self, ctx: CallContext) -> Answer:
        meeting = self._live_meeting(ctx.params)
        password = ctx.params.text("password")
        if password and not same_secret(password, meeting.spec.moderator_pw):
            raise errors.invalid_moderator_password()
        self._registry.end_meeting(meeting, EndReason.ENDED_FROM_API)
        return [
            ("messageKey", "sentEndMeetingRequest"),
            ("message", ("A request to end the meeting was sent.  Please wait a few seconds, "
                        "and then use the getMeetingInfo or isMeetingRunning API calls to "
                        "verify that it was ended.")),
        ]

    def is_meeting_running(self, ctx: CallContext) -> Answer:
        meeting = self._registry.get_meeting(P.require_meeting_id(ctx.params))
        return [("running", meeting is not None and meeting.running)]

    def get_meeting_info(self, ctx: CallContext) -> Answer:
        meeting = self._live_meeting(ctx.params)
        extension = self._renderer.presentation_nodes(meeting)
        if not extension:  # no documents: BBB's answer, prerendered
            return Prerendered(self._renderer.meeting_info(meeting, ctx.fmt))
        if ctx.fmt == "xml":
            return [("", Raw(self._renderer.xml(meeting))), *extension]
        return [*self._renderer.nodes(meeting), *extension]

    def get_meetings(self, ctx: CallContext) -> Answer:
        meetings = list(self._registry.meetings())
        if not meetings:
            return [("meetings", Items("meeting", [])), ("messageKey", "noMeetings"),
                    ("message", "no meetings were found on this server")]
        return Prerendered(self._renderer.meeting_list(meetings, ctx.fmt))
