"""The log level filter (per namespace too) and the JSON format (meetplatform.logs)."""

from __future__ import annotations

import io
from typing import cast

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.logger import (
    FileLogObserver,
    ILogObserver,
    Logger,
    LogLevel,
    LogPublisher,
    PredicateResult,
    eventFromJSON,
    formatEventAsClassicLogText,
    formatTime,
    textFileLogObserver,
)
from twisted.python.failure import Failure

from meetplatform.logs import ClassicText, ProcessLogging, json_line, level_predicate


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


# --- the text line: twistd's, computed faster --------------------------------------------

_VALUES = st.one_of(st.text(max_size=20), st.integers(), st.floats(allow_nan=False),
                    st.none(), st.lists(st.integers(), max_size=3))


@settings(max_examples=300, deadline=None)
@given(
    fields=st.dictionaries(st.from_regex(r"[a-z_]{1,8}", fullmatch=True), _VALUES,
                           max_size=4),
    extra=st.sampled_from(["", "{missing}", "{0}", "{x()}", "{n!r:>6}", "{n.real}",
                           "{{literal}}", "{", "line\ntwo", "{log_namespace}"]),
    when=st.one_of(st.none(), st.floats(min_value=0, max_value=4e9)),
    level=st.sampled_from([None, LogLevel.debug, LogLevel.info, LogLevel.error]),
    system=st.one_of(st.none(), st.text(max_size=10), st.integers()),
    namespace=st.one_of(st.none(), st.text(max_size=10)),
)
def test_text_lines_are_exactly_twisteds(fields: dict[str, object], extra: str,
                                         when: float | None, level: LogLevel | None,
                                         system: object, namespace: str | None) -> None:
    """For any event (fields of any type, formats Twisted reads differently from
    ``str.format``, missing keys, newlines) the line is the one twistd would write."""
    event: dict[str, object] = {f"f_{k}": v for k, v in fields.items()}
    event.update({"n": 7, "x": lambda: "called"})
    event["log_format"] = " ".join(f"{{f_{k}}}" for k in fields) + extra
    for key, value in (("log_time", when), ("log_level", level), ("log_system", system),
                       ("log_namespace", namespace)):
        if value is not None:
            event[key] = value
    assert ClassicText()(event) == formatEventAsClassicLogText(event)


def test_text_lines_with_failures_and_bytes_formats_are_twisteds() -> None:
    failure = Failure(ZeroDivisionError("division by zero"))
    events: list[dict[str, object]] = [
        {"log_format": "it broke {n}", "n": 1, "log_failure": failure, "log_time": 5.0},
        {"log_format": b"bytes {n}", "n": 2, "log_time": 6.0},
        {"log_format": "", "log_time": 7.0},
        {"log_time": 8.0},
        {"log_format": "{n}", "n": 3, "log_system": Unprintable(), "log_time": 9.0},
    ]
    text = ClassicText()
    for event in events:
        assert text(event) == formatEventAsClassicLogText(event)


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no text")


def test_one_time_text_per_second_follows_the_clock() -> None:
    """The cached time text changes with the second (and is Twisted's for each)."""
    text = ClassicText()
    for when in (1_700_000_000.1, 1_700_000_000.9, 1_700_000_001.0, 1_699_999_999.5):
        assert text.time_text(when) == formatTime(when)


def test_twistds_text_observer_writes_the_faster_lines_to_the_same_file() -> None:
    """Installed over twistd's own ``textFileLogObserver``, lines go to its file in the
    same format; another kind of observer is only filtered."""
    publisher = LogPublisher()
    out = io.StringIO()
    seen: list[dict[str, object]] = []
    twistd_observer = textFileLogObserver(out)
    publisher.addObserver(twistd_observer)
    publisher.addObserver(cast(ILogObserver, seen.append))
    logging = ProcessLogging(publisher, [])
    logging.install()
    Logger("meetplatform.test", observer=publisher).info("activated {uses}/{max}", uses=1,
                                                        max=5)
    wrapped = [o for o in publisher._observers if o is not twistd_observer]  # type: ignore[attr-defined]
    assert twistd_observer not in publisher._observers  # type: ignore[attr-defined]
    inner = [getattr(o, "_observer", None) for o in wrapped]  # FilteringLogObserver's
    assert any(isinstance(o, FileLogObserver) and isinstance(o.formatEvent, ClassicText)
               for o in inner)
    assert out.getvalue().endswith(" [meetplatform.test#info] activated 1/5\n")
    assert len(seen) == 1
