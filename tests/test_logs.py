"""The log level filter (per namespace too) and the JSON format (meetplatform.logs)."""

from __future__ import annotations

import io
from typing import cast

from twisted.logger import (
    ILogObserver,
    Logger,
    LogLevel,
    LogPublisher,
    PredicateResult,
    eventFromJSON,
    textFileLogObserver,
)

from meetplatform.logs import ProcessLogging, json_line, level_predicate


def test_default_level_is_info_and_namespaces_inherit() -> None:
    predicate = level_predicate([("meetplatform.signalling", "debug"),
                                 ("meetplatform.restapi", "error")])

    def allowed(namespace: str, level: LogLevel) -> bool:
        event = {"log_namespace": namespace, "log_level": level}
        return predicate(event) is not PredicateResult.no

    assert not allowed("meetplatform.tap", LogLevel.debug)
    assert allowed("meetplatform.tap", LogLevel.info)
    assert allowed("meetplatform.signalling.hub", LogLevel.debug)
    assert not allowed("meetplatform.restapi.api", LogLevel.warn)
    assert allowed("meetplatform.restapi.api", LogLevel.error)
    assert not allowed("twisted.web", LogLevel.debug)
    everything = level_predicate([("", "debug")])
    assert everything({"log_namespace": "x", "log_level": LogLevel.debug}) is not (
        PredicateResult.no)


def test_installed_filter_drops_debug_and_uninstall_restores() -> None:
    publisher = LogPublisher()
    out = io.StringIO()
    publisher.addObserver(textFileLogObserver(out))
    logging = ProcessLogging(publisher, [])
    log = Logger("meetplatform.test", observer=publisher)
    logging.install()
    logging.install()  # once only: no filter around the filter
    log.debug("hidden {n}", n=1)
    log.info("shown {n}", n=2)
    logging.uninstall()
    log.debug("after {n}", n=3)
    text = out.getvalue()
    assert "hidden 1" not in text and "shown 2" in text and "after 3" in text


def test_json_format_writes_one_object_per_line_to_the_same_file() -> None:
    publisher = LogPublisher()
    out = io.StringIO()
    publisher.addObserver(textFileLogObserver(out))
    ProcessLogging(publisher, [("", "debug")], "json").install()
    log = Logger("meetplatform.test", observer=publisher)
    log.debug("joined {user}", user="u1")
    try:
        raise ValueError("broken")
    except ValueError:
        log.failure("it failed")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (eventFromJSON(line) for line in lines)
    assert first["log_level"] is LogLevel.debug and first["user"] == "u1"
    assert first["log_text"] == "joined u1" and first["log_namespace"] == "meetplatform.test"
    assert second["log_level"] is LogLevel.critical
    assert "ValueError: broken" in second["log_traceback"]


def test_json_line_survives_values_json_cannot_hold() -> None:
    line = json_line({"log_format": "{x}", "x": object(), "log_level": LogLevel.info,
                      "log_namespace": "n", "log_time": 0.0})
    assert line.endswith("\n") and "\n" not in line[:-1]
    assert eventFromJSON(line)["log_namespace"] == "n"


def test_observers_that_are_not_files_keep_their_format() -> None:
    publisher = LogPublisher()
    seen: list[dict[str, object]] = []
    publisher.addObserver(cast(ILogObserver, seen.append))
    out = io.StringIO()
    publisher.addObserver(textFileLogObserver(out))
    ProcessLogging(publisher, [], "json").install()
    Logger("meetplatform.test", observer=publisher).info("hello")
    assert any(event.get("log_format") == "hello" for event in seen)
    assert eventFromJSON(out.getvalue().splitlines()[-1])["log_text"] == "hello"
