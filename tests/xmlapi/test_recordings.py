"""Recording calls of the XML API over the in-memory catalogue (StubTreq)."""

from __future__ import annotations

import json

from meetplatform.recordings import PlaybackFormat, PreviewImage, Recording
from tests.xmlapi.helpers import Env, make_env


def _recording(record_id: str, meeting_id: str, start: int, state: str = "published",
               **metadata: str) -> Recording:
    return Recording(
        record_id=record_id, meeting_id=meeting_id, internal_meeting_id=record_id,
        name=f"Recording of {meeting_id}", state=state, start_time=start, end_time=start + 60,
        participants=3, metadata=metadata,
        playback=(PlaybackFormat("presentation", f"https://p.test/{record_id}",
                                 processing_time=2973, length=12, size=168019, preview=(
                                     PreviewImage("https://p.test/t1.png", 176, 136, "Welcome"),
                                 )),),
    )


def _get(env: Env, record_id: str) -> Recording:
    recording = env.recordings.get(record_id)
    assert recording is not None
    return recording


def populated() -> Env:
    env = make_env()
    for recording in (
        _recording("aaa-1", "maths", 100, presenter="joe", category="education"),
        _recording("aaa-2", "maths", 200, "unpublished", presenter="ann"),
        _recording("bbb-1", "physics", 300, presenter="joe"),
        _recording("ccc-1", "chem", 400, "processing"),
        _recording("ddd-1", "chem", 500, "deleted"),
    ):
        env.recordings.add(recording)
    return env


def ids(env: Env, query: dict[str, str] | str = "") -> list[str]:
    answer = env.call("getRecordings", query)
    assert answer.returncode == "SUCCESS", answer.body
    return [r.findtext("recordID") for r in answer.xml.findall("recordings/recording")]


def test_no_recordings() -> None:
    """With nothing recorded, getRecordings answers noRecordings and an empty list."""
    answer = make_env().call("getRecordings")
    assert answer.returncode == "SUCCESS" and answer.key == "noRecordings"
    assert answer.text("message") == "No recordings found"
    assert answer.xml.find("recordings") is not None


def test_recording_fields() -> None:
    """A recording is listed with BBB's fields, metadata and playback formats."""
    env = populated()
    answer = env.call("getRecordings", {"recordID": "aaa-1"})
    recording = answer.xml.find("recordings/recording")
    assert [e.tag for e in recording] == [
        "recordID", "meetingID", "internalMeetingID", "name", "isBreakout", "published",
        "state", "startTime", "endTime", "participants", "metadata", "playback"]
    assert recording.findtext("published") == "true" and recording.findtext("state") == (
        "published")
    assert recording.findtext("metadata/presenter") == "joe"
    playback = recording.find("playback/format")
    assert [e.tag for e in playback] == ["type", "url", "processingTime", "length", "size",
                                         "preview"]
    image = playback.find("preview/images/image")
    assert image.text == "https://p.test/t1.png"
    assert (image.get("width"), image.get("height"), image.get("alt")) == (
        "176", "136", "Welcome")


def test_default_states_are_published_and_unpublished() -> None:
    """Without state, getRecordings lists published and unpublished recordings."""
    assert ids(populated()) == ["aaa-1", "aaa-2", "bbb-1"]


def test_state_filter() -> None:
    """state selects recordings by state; 'any' lists them all."""
    env = populated()
    assert ids(env, {"state": "processing,deleted"}) == ["ccc-1", "ddd-1"]
    assert ids(env, {"state": "any"}) == ["aaa-1", "aaa-2", "bbb-1", "ccc-1", "ddd-1"]
    assert env.call("getRecordings", {"state": "lost"}).key == "validationError"


def test_meeting_and_record_id_lists() -> None:
    """meetingID and recordID take comma lists; recordID matches prefixes and wins."""
    env = populated()
    assert ids(env, {"meetingID": "maths,physics"}) == ["aaa-1", "aaa-2", "bbb-1"]
    assert ids(env, {"recordID": "aaa"}) == ["aaa-1", "aaa-2"]
    assert ids(env, {"recordID": "bbb-1", "meetingID": "maths"}) == ["bbb-1"]


def test_metadata_filters_must_all_match() -> None:
    """meta_* filters (Mconf) keep recordings matching every one of them."""
    env = populated()
    assert ids(env, {"meta_presenter": "joe"}) == ["aaa-1", "bbb-1"]
    assert ids(env, {"meta_presenter": "joe", "meta_category": "education"}) == ["aaa-1"]
    assert ids(env, {"meta_presenter": "joe", "meetingID": "physics"}) == ["bbb-1"]
    assert env.call("getRecordings", {"meta_presenter": "nobody"}).key == "noRecordings"


def test_offset_and_limit() -> None:
    """offset/limit page the list; totalElements says how many matched."""
    env = populated()
    answer = env.call("getRecordings", {"offset": "1", "limit": "1"})
    assert [r.findtext("recordID") for r in answer.xml.findall("recordings/recording")] == [
        "aaa-2"]
    assert answer.text("totalElements") == "3"
    assert env.call("getRecordings", {"limit": "0"}).key == "validationError"
    assert env.call("getRecordings", {"limit": "101"}).key == "validationError"
    assert env.call("getRecordings", {"offset": "-1"}).key == "validationError"


def test_publish_recordings() -> None:
    """publishRecordings changes the state and answers <published>."""
    env = populated()
    answer = env.call("publishRecordings", {"recordID": "aaa-1,bbb-1", "publish": "false"})
    assert answer.returncode == "SUCCESS" and answer.text("published") == "false"
    assert _get(env, "aaa-1").state == "unpublished"
    assert env.call("publishRecordings", {"recordID": "aaa-1", "publish": "TRUE"}).text(
        "published") == "true"
    assert _get(env, "aaa-1").published


def test_publish_errors() -> None:
    """publishRecordings needs recordID and publish, and existing recordings."""
    env = populated()
    assert env.call("publishRecordings", {"publish": "true"}).key == "missingParamRecordID"
    missing = env.call("publishRecordings", {"recordID": "aaa-1"})
    assert missing.key == "missingParamPublish"
    assert missing.text("message") == "You must specify a publish value true or false."
    assert env.call("publishRecordings", {"recordID": "aaa-1", "publish": "yes"}).key == (
        "missingParamPublish")
    unknown = env.call("publishRecordings", {"recordID": "zzz", "publish": "true"})
    assert unknown.key == "notFound" and unknown.text("message") == (
        "We could not find recordings")


def test_delete_recordings() -> None:
    """deleteRecordings marks recordings deleted; they leave the default listing."""
    env = populated()
    answer = env.call("deleteRecordings", {"recordID": "aaa-2"})
    assert answer.text("deleted") == "true"
    assert ids(env) == ["aaa-1", "bbb-1"]
    assert env.call("deleteRecordings", {"recordID": "zzz"}).key == "notFound"
    assert env.call("deleteRecordings").key == "missingParamRecordID"


def test_update_recordings() -> None:
    """updateRecordings sets meta_* values; an empty value removes the name."""
    env = populated()
    answer = env.call("updateRecordings", {"recordID": "aaa-1", "meta_Presenter": "max",
                                           "meta_category": ""})
    assert answer.text("updated") == "true"
    assert dict(_get(env, "aaa-1").metadata) == {"presenter": "max"}
    assert env.call("updateRecordings", {"recordID": "zzz"}).key == "notFound"
    assert env.call("updateRecordings").key == "missingParamRecordID"


def test_recordings_in_json() -> None:
    """getRecordings answers the same fields as JSON when asked."""
    env = populated()
    answer = env.call("getRecordings", {"recordID": "aaa-1"},
                      headers={"Accept": ["application/json"]})
    recording = json.loads(answer.body)["response"]["recordings"][0]
    assert recording["recordID"] == "aaa-1" and recording["published"] is True
    assert recording["playback"][0]["preview"]["images"][0]["value"] == "https://p.test/t1.png"
