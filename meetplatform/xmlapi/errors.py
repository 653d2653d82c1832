"""The XML API's refusals, with BigBlueButton's exact ``messageKey`` and message texts.

Handlers raise :class:`ApiError`; the one error handler of the pipeline
(:class:`~meetplatform.xmlapi.pipeline.ApiPipeline`)
turns it into ``<response><returncode>FAILED</returncode><messageKey>..`` (or the legacy
``<errors>`` list for the few calls where bbb-web answers that way), into JSON, or, on a
redirecting ``join``, into a redirect carrying ``errors=[...]``.
"""

from __future__ import annotations

import re

from meetplatform.text import BadText

_CONTROL = re.compile("[\x00-\x1f\x7f]")


class ApiError(Exception):
    """A FAILED answer: ``key`` is the messageKey, ``message`` the human text."""

    def __init__(self, key: str, message: str, *, as_list: bool = False,
                 status: int = 200, redirectable: bool = True,
                 fmt: str | None = None) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message
        #: Render as bbb-web's ``<errors><error><key>..`` list instead of messageKey/message.
        self.as_list = as_list
        #: HTTP status; bbb-web answers its API errors with 200.
        self.status = status
        #: False for the errors a redirecting ``join`` still answers as XML (as bbb-web does).
        self.redirectable = redirectable
        #: False when the request failed its checksum: its parameters can't pick where a
        #: redirecting ``join`` sends the browser.
        self.trusted = True
        #: Answer in this format whatever the request asked for (``"json"`` for a bad
        #: JSONP callback).
        self.fmt = fmt


# --- checksum and request shape ---------------------------------------------------------


def checksum_error() -> ApiError:
    return ApiError("checksumError", "Checksums do not match")


def unsupported_request() -> ApiError:
    return ApiError("unsupportedRequest", "This request is not supported.")


def method_not_allowed(method: str) -> ApiError:
    return ApiError("unsupportedRequest",
                    f"This request is not supported: use GET or POST, not {method}.",
                    status=405)


def unsupported_content_type() -> ApiError:
    return ApiError("unsupportedContentType", "POST request Content-Type is missing or unsupported")


def query_too_large(limit: int) -> ApiError:
    return ApiError("sizeError", f"The query string is longer than {limit} bytes.", status=414)


def body_too_large(limit: int) -> ApiError:
    return ApiError("sizeError", f"The request body is larger than {limit} bytes.", status=413)


def validation(message: str) -> ApiError:
    return ApiError("validationError", message)


def bad_text(bad: BadText) -> ApiError:
    """A parameter that is not valid Unicode (the service-wide rule, :mod:`meetplatform.text`)."""
    field = f"Param '{_CONTROL.sub('', bad.where)[:100]}'" if bad.where else "A parameter name"
    return validation(f"{field} is not valid UTF-8 text; parameters must be UTF-8, "
                      "percent-encoded.")


def invalid_parameters() -> ApiError:
    """Mconf-LB: reserved ``mconflb-*`` metadata on ``create``."""
    return ApiError("invalidParameters",
                    "The URL you supplied has parameters that are not accepted.")


# --- meetings -----------------------------------------------------------------------------


def missing_meeting_id() -> ApiError:
    return ApiError("missingParamMeetingID", "You must provide a meeting ID")


def missing_meeting_id_legacy() -> ApiError:
    return ApiError("missingParamMeetingID", "You must specify a meeting ID for the meeting.")


def missing_full_name() -> ApiError:
    return ApiError("missingParamFullName", "You must provide your name")


def not_found_meeting() -> ApiError:
    return ApiError("notFound", "A meeting with that ID does not exist")


def invalid_meeting_identifier() -> ApiError:
    return ApiError("invalidMeetingIdentifier",
                    "The meeting ID that you supplied did not match any existing meetings")


def meeting_forcibly_ended() -> ApiError:
    return ApiError("meetingForciblyEnded",
                    "You can not join a meeting that has already been forcibly ended")


def id_not_unique() -> ApiError:
    return ApiError("idNotUnique",
                    "A meeting already exists with that meeting ID.  Please use a different "
                    "meeting ID.")


def non_unique_voice_bridge() -> ApiError:
    return ApiError("nonUniqueVoiceBridge", "The selected voice bridge is already in use.",
                    as_list=True)


def parent_meeting_id_missing() -> ApiError:
    return ApiError("parentMeetingIdMissing",
                    "No parent meeting ID was provided for the breakout room")


def parent_meeting_does_not_exist() -> ApiError:
    """A breakout whose ``parentMeetingID`` names no running meeting (the key and message
    of BigBlueButton's own API tests and of its Go API server)."""
    return ApiError("parentMeetingDoesNotExist",
                    "No parent meeting exists for the breakout room")


def mismatch_create_time() -> ApiError:
    return ApiError("mismatchCreateTimeParam",
                    "The createTime parameter submitted mismatches with the current meeting.")


def max_participants_reached() -> ApiError:
    return ApiError("maxParticipantsReached",
                    "The number of participants allowed for this meeting has been reached.")


def guest_denied_access() -> ApiError:
    return ApiError("guestDeniedAccess",
                    "You have been denied access to this meeting based on the meeting's guest "
                    "policy")


def role_required_without_passwords() -> ApiError:
    return ApiError("Params required",
                    "You must send the 'role' parameter, since this meeting doesn't have any "
                    "password.", redirectable=False)


def invalid_join_password() -> ApiError:
    return ApiError("Params required", "You must enter a valid password", redirectable=False)


def role_or_password_required() -> ApiError:
    return ApiError("Params required",
                    "You must either send the valid role of the user, or the password, sould "
                    "the meeting has one.", redirectable=False)


def invalid_moderator_password() -> ApiError:
    return ApiError("invalidPassword", "The supplied moderator password is incorrect")


def no_config_found() -> ApiError:
    return ApiError("noConfigFound", "We could not find a config for this request.")


def meeting_not_active() -> ApiError:
    """``sendChatMessage`` to a meeting that is not there."""
    return ApiError("meetingNotFound", "Meeting not found or not active")


# --- recordings ---------------------------------------------------------------------------


def missing_record_id() -> ApiError:
    return ApiError("missingParamRecordID", "You must specify a recordID.")


def missing_publish() -> ApiError:
    return ApiError("missingParamPublish", "You must specify a publish value true or false.")


def recordings_not_found() -> ApiError:
    return ApiError("notFound", "We could not find recordings")


# --- config.xml -----------------------------------------------------------------------------


def config_checksum_error() -> ApiError:
    return ApiError("configXMLChecksumError",
                    "configXMLChecksumError: request did not pass the checksum security check.")


def missing_config_xml() -> ApiError:
    return ApiError("configXMLError", "You did not pass a config XML")


def bad_config_xml() -> ApiError:
    return ApiError("configXMLError", "Cannot decode config XML")
