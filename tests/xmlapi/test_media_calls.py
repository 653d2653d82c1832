"""getServers (seed 002), preferredServer on create and the <server> block, over media
nodes watched by MediaNodes with fake controls and a task.Clock."""

from __future__ import annotations

import json

from meetplatform.media.nodes import MediaNodes
from meetplatform.xmlapi.media_calls import MediaCalls, server_nodes, server_xml
from tests.media.test_nodes import FakeControl, record
from tests.xmlapi.helpers import PUBLIC_URL, Env, make_env


def setup(*records_: object) -> tuple[Env, MediaNodes, dict[str, FakeControl]]:
    env = make_env()
    controls: dict[str, FakeControl] = {}
    records = list(records_)

    async def load() -> list[object]:
        return records

    nodes = MediaNodes(env.clock, load,  # type: ignore[arg-type]
                       control_factory=lambda r: controls.setdefault(r.name,
                                                                     FakeControl(env.clock)))
    nodes.startService()
    nodes.follow(env.registry, create_rooms=False)
    MediaCalls(env.settings, nodes).register(env.api)
    return env, nodes, controls


def test_get_servers_lists_nodes_with_the_seed_fields() -> None:
    env, _, controls = setup(record("sfu-1", capacity=10), record("sfu-2"),
                                 record("sfu-3", state="draining"))
    env.create("m1", preferredServer="sfu-2", voiceBridge="71111")
    controls["sfu-1"].mode = "silent"
    for _ in range(80):
        env.clock.advance(0.1)
    answer = env.call("getServers")
    assert answer.returncode == "SUCCESS"
    servers = answer.xml.findall("servers/server")
    assert [s.findtext("name") for s in servers] == ["sfu-1", "sfu-2", "sfu-3"]
    first = servers[0]
    assert [e.tag for e in first] == [
        "name", "address", "url", "status", "disableState", "geoloc", "isDisabled", "state",
        "online", "meetings", "publishers", "subscriptions", "capacity", "load"]
    assert [e.tag for e in first.find("geoloc")] == [  # type: ignore[union-attr]
        "address", "ip", "countryCode", "countryCode3", "countryName", "city", "latitude",
        "longitude", "continentCode"]
    values = {s.findtext("name"): {e.tag: e.text for e in s} for s in servers}
    assert values["sfu-1"]["status"] == "4" and values["sfu-1"]["isDisabled"] == "true"
    assert values["sfu-1"]["online"] == "false"
    assert (values["sfu-2"]["status"], values["sfu-2"]["disableState"],
            values["sfu-2"]["isDisabled"], values["sfu-2"]["meetings"]) == ("2", "3", "false", "1")
    assert values["sfu-2"]["address"] == "sfu-2" and values["sfu-2"]["url"] == "ws://sfu-2:8188"
    assert (values["sfu-3"]["disableState"], values["sfu-3"]["isDisabled"],
            values["sfu-3"]["state"]) == ("1", "true", "draining")
    assert values["sfu-2"]["load"] == "0.010"
    # unsigned: the standard checksum error
    bad = env.request("GET", "http://meet.example.test/bigbluebutton/api/getServers")
    assert bad.key == "checksumError"
    as_json = json.loads(env.call("getServers", headers={"accept": "application/json"}).body)
    assert [s["name"] for s in as_json["response"]["servers"]] == ["sfu-1", "sfu-2", "sfu-3"]


def test_preferred_server_and_the_server_block() -> None:
    env, nodes, _ = setup(record("sfu-1"), record("sfu-2"))
    env.create("m1", preferredServer="sfu-2")
    env.create("m2", preferredServer="sfu-2")
    env.create("m3", preferredServer="no-such-server")
    placed = {m: nodes.placement(env.meeting(m).internal_id) for m in ("m1", "m2", "m3")}
    assert placed["m1"].node.name == "sfu-2" and placed["m2"].node.name == "sfu-2"  # type: ignore[union-attr]
    assert placed["m3"].node.name == "sfu-1"  # type: ignore[union-attr]
    m1 = env.meeting("m1")
    assert placed["m1"].room == int(m1.voice_bridge)  # type: ignore[union-attr]
    block = server_nodes(env.settings, nodes, m1.internal_id)
    assert block == [("server", [("name", "sfu-2"), ("address", "sfu-2"),
                                 ("url", "ws://sfu-2:8188")])]
    assert server_xml(env.settings, nodes, m1.internal_id) == (
        "<server><name>sfu-2</name><address>sfu-2</address><url>ws://sfu-2:8188</url>"
        "</server>")
    env.call("end", {"meetingID": "m1"})
    assert nodes.placement(m1.internal_id) is None


def test_mesh_meetings_name_this_server() -> None:
    env, nodes, _ = setup()
    env.create("m1")
    internal = env.meeting("m1").internal_id
    assert nodes.placement(internal) is None
    assert server_xml(env.settings, nodes, internal) == (
        "<server><name>meetplatform</name><address>meet.example.test</address>"
        f"<url>{PUBLIC_URL}</url></server>")
    assert server_nodes(env.settings, None, internal) == [("server", [
        ("name", "meetplatform"), ("address", "meet.example.test"), ("url", PUBLIC_URL)])]
    answer = env.call("getServers")
    assert answer.returncode == "SUCCESS" and answer.xml.find("servers") is not None
    assert answer.xml.findall("servers/server") == []


def test_get_meetings_and_info_carry_the_server_block() -> None:
    """With the block installed (as the composition root does), each meeting ends with
    <server>, in XML (fast path) and JSON alike."""
    from meetplatform.xmlapi.media_calls import ServerBlock

    env, nodes, _ = setup(record("sfu-1"))
    env.api.renderer.server = ServerBlock(env.settings, nodes)
    env.create("m1")
    info = env.call("getMeetingInfo", {"meetingID": "m1"})
    assert [e.tag for e in info.xml][-1] == "server"
    assert [(e.tag, e.text) for e in info.xml.find("server")] == [  # type: ignore[union-attr]
        ("name", "sfu-1"), ("address", "sfu-1"), ("url", "ws://sfu-1:8188")]
    listing = env.call("getMeetings")
    assert listing.xml.findtext("meetings/meeting/server/name") == "sfu-1"
    as_json = json.loads(env.call("getMeetingInfo", {"meetingID": "m1"},
                                  headers={"accept": "application/json"}).body)
    assert as_json["response"]["server"] == {"name": "sfu-1", "address": "sfu-1",
                                             "url": "ws://sfu-1:8188"}


def test_a_moved_meeting_shows_its_new_server_once_invalidated() -> None:
    """getMeetings is served from cached bytes: whoever changes a meeting's node calls
    renderer.invalidate(meeting), and the next answer names the new server."""
    from meetplatform.xmlapi.media_calls import ServerBlock

    env, nodes, _ = setup(record("sfu-1"))
    env.api.renderer.server = ServerBlock(env.settings, nodes)
    env.create("m1")
    meeting = env.meeting("m1")
    assert env.call("getMeetings").xml.findtext("meetings/meeting/server/name") == "sfu-1"
    nodes._placements.pop(meeting.internal_id)  # as if the meeting had left its node
    assert env.call("getMeetings").xml.findtext("meetings/meeting/server/name") == "sfu-1"
    env.api.renderer.invalidate(meeting)
    assert env.call("getMeetings").xml.findtext(
        "meetings/meeting/server/name") == "meetplatform"
    info = json.loads(env.call("getMeetingInfo", {"meetingID": "m1"},
                               headers={"accept": "application/json"}).body)
    assert info["response"]["server"]["name"] == "meetplatform"
