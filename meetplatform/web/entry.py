"""How a seat enters the meeting: what the pre-join screen offers, from the seat.

The conference page shows a pre-join screen (name, camera preview, microphone level,
speakers test, device choice, audio choice) before its socket joins. What it offers comes
from the seat, and for seats of the BBB API from BigBlueButton's ``userdata-bbb_*`` join
parameters (the names BBB's own client reads; the ``userdata-`` prefix is stripped when
the seat is issued):

=====================================  ==================================================
``bbb_override_default_locale=de``     the page's language (over the browser's)
``bbb_skip_check_audio=true``          no pre-join screen: join at once with the audio
                                       choice below (BBB: no echo test)
``bbb_skip_check_audio_on_first_join`` the same (every join of this page is a first one)
``bbb_force_listen_only=true``         listen only; no microphone offered
``bbb_listen_only_mode=false``         listen only is not offered
``bbb_auto_join_audio=false``          the audio choice starts on "no audio for now"
``bbb_auto_share_webcam=true``         the camera starts on (preview, then shared)
``bbb_enable_video=false``             no camera at all: no preview, no camera button
``bbb_skip_video_preview=true``        the camera preview is not started on its own
=====================================  ==================================================

Names are fixed before a seat exists on every way in (BBB ``fullName``, the invitation's
or the embed's name form), so the screen shows the name read-only.

:func:`seat_entry` is a plain dict: it goes into the page as JSON (``<meta name="mp-seat">``)
and into the embed session's answer.
"""

from __future__ import annotations

from typing import Any

from meetplatform.model import Seat

__all__ = ["HONOURED_USERDATA", "seat_entry"]

HONOURED_USERDATA = (
    "bbb_override_default_locale", "bbb_skip_check_audio",
    "bbb_skip_check_audio_on_first_join", "bbb_force_listen_only", "bbb_listen_only_mode",
    "bbb_auto_join_audio", "bbb_auto_share_webcam", "bbb_enable_video",
    "bbb_skip_video_preview",
)


def _flag(userdata: dict[str, str], name: str, default: bool) -> bool:
    value = userdata.get(name)
    if value is None:
        return default
    return value.strip().lower() in ("true", "1", "yes")


def seat_entry(seat: Seat) -> dict[str, Any]:
    """What the pre-join screen of ``seat`` offers (see the module's table)."""
    ud = seat.userdata
    force_listen = _flag(ud, "bbb_force_listen_only", False)
    listen_offered = force_listen or _flag(ud, "bbb_listen_only_mode", True)
    audio_choices = ["listen"] if force_listen else (
        ["microphone", "listen", "none"] if listen_offered else ["microphone", "none"])
    if force_listen:
        default_audio = "listen"
    elif not _flag(ud, "bbb_auto_join_audio", True):
        default_audio = "none"
    else:
        default_audio = None  # the browser's remembered choice, else the microphone
    video = _flag(ud, "bbb_enable_video", True)
    return {
        "name": seat.full_name,
        "nameEditable": False,
        "locale": (ud.get("bbb_override_default_locale") or "").strip() or None,
        "skipPrejoin": (_flag(ud, "bbb_skip_check_audio", False)
                        or _flag(ud, "bbb_skip_check_audio_on_first_join", False)),
        "audioChoices": audio_choices,
        "defaultAudio": default_audio,
        "video": video,
        "cameraOn": (True if video and _flag(ud, "bbb_auto_share_webcam", False) else None)
        if video else False,
        "preview": video and not _flag(ud, "bbb_skip_video_preview", False),
    }
