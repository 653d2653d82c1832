"""The JSON:API's recordings: a room's and a space's lists, read, publish, delete."""

from __future__ import annotations

from pathlib import Path

from meetplatform.store import recordings_db as rdb
from meetplatform.store.database import Database
from tests.restapi.harness import Harness
from tests.support import run


def add(h: Harness, record_id: str, meeting_id: str, start: int, **extra: object) -> None:
    row = rdb.RecordingRow(record_id, meeting_id, record_id, "Course", False, "processing",
                           True, start, start + 60_000, 2, segments=((start, start + 60_000),))
    run(h.store.run(lambda db: rdb.add_recording(db, row, h.now_ms())))
    if extra.get("ready"):
        def finish(db: Database) -> None:
            [job] = [j for j in rdb.jobs(db) if j.record_id == record_id]
            rdb.finish_processing(db, record_id, length_ms=61_000, size=1234,
                                  processing_ms=900, participants=2, job_id=job.id, now=1)
        run(h.store.run(finish))


def test_recordings_of_a_room_and_a_space(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    acme, other = h.new_client("acme"), h.new_client("other")
    room = h.create_room(acme)["id"]
    add(h, "r-room", f"{acme.space.id}/{room}", 2000, ready=True)
    add(h, "r-meeting", f"{acme.space.id}/weekly", 1000)
    add(h, "r-other", f"{other.space.id}/{room}", 3000)
    add(h, "r-bbb", "plain-bbb-meeting", 500)

    listed = h.request("GET", f"/rooms/{room}/recordings", token=acme.token).json["data"]
    assert [r["id"] for r in listed] == ["r-room"]
    attrs = listed[0]["attributes"]
    assert attrs["state"] == "published" and attrs["published"] is True
    assert attrs["lengthMs"] == 61_000 and attrs["size"] == 1234
    assert attrs["playbackUrl"].endswith("/playback/video/r-room/")
    assert len(attrs["segments"]) == 1 and attrs["failure"] is None
    space = h.request("GET", f"/spaces/{acme.space.id}/recordings?page[size]=1",
                      token=acme.token).json
    assert [r["id"] for r in space["data"]] == ["r-meeting"]
    assert space["links"]["next"] is not None
    following = h.request("GET", space["links"]["next"].split("/api/v2", 1)[1],
                          token=acme.token).json
    assert [r["id"] for r in following["data"]] == ["r-room"]
    processing = h.request("GET", "/recordings/r-meeting", token=acme.token).json["data"]
    assert processing["attributes"]["state"] == "processing"
    assert processing["attributes"]["playbackUrl"] is None

    assert h.request("GET", "/recordings/r-other", token=acme.token).status == 404
    assert h.request("GET", "/recordings/r-bbb", token=acme.token).status == 404

    r = h.request("PATCH", "/recordings/r-room", token=acme.token, json={"data": {
        "type": "recordings", "id": "r-room", "attributes": {"published": False}}})
    assert r.status == 200 and r.json["data"]["attributes"]["state"] == "unpublished"
    assert h.request("DELETE", "/recordings/r-room", token=acme.token).status == 204
    assert h.request("GET", "/recordings/r-room", token=acme.token).status == 404
    assert h.request("GET", f"/rooms/{room}/recordings", token=acme.token).json["data"] == []
    jobs = run(h.store.run(rdb.jobs))
    assert ("delete", "r-room") in [(j.kind, j.record_id) for j in jobs]
