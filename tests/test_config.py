"""Configuration loading (command line > environment > config file > defaults) and the secret."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twisted.python import usage

from meetplatform.config import (
    ALL_CHECKSUM_ALGORITHMS,
    ConfigError,
    ConfigOptions,
    ConfigUsageError,
    IceServer,
    ServiceConfig,
    load_config,
    parse_listener,
    with_backlog,
)
from meetplatform.secret import (
    SecretError,
    _write_new_secret,
    inspect_secret,
    load_or_create_secret,
    read_secret,
)


def load(tmp_path: Path, cli: dict[str, object] | None = None,
         env: dict[str, str] | None = None) -> ServiceConfig:
    return load_config(cli or {}, env or {}, cwd=tmp_path)


def problems_of(tmp_path: Path, cli: dict[str, object] | None = None,
                env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, cli, env)
    return str(caught.value)


# --- defaults and precedence ---------------------------------------------------------------


def test_defaults_need_no_configuration(tmp_path: Path) -> None:
    """With nothing configured the service listens on tcp:8080 and uses ./meetplatform-data."""
    config = load(tmp_path)
    assert config.listen == ("tcp:8080",)
    assert config.data_dir == tmp_path / "meetplatform-data"
    assert config.secret_path == tmp_path / "meetplatform-data" / "secret"
    assert config.checksum_algorithms == ALL_CHECKSUM_ALGORITHMS
    assert config.public_url is None
    assert config.derived_public_url() == "http://127.0.0.1:8080"
    assert config.access_log is None
    assert config.warnings == ()
    settings = config.settings("s3cr3t-value-long-enough", config.derived_public_url() or "")
    assert settings.api_url == "http://127.0.0.1:8080/bigbluebutton/api/"
    assert settings.secret_file == tmp_path / "meetplatform-data" / "secret"


def test_command_line_beats_environment_beats_file(tmp_path: Path) -> None:
    """A key set in all three places takes the command line's value, then the env's, then the file's."""
    (tmp_path / "m.toml").write_text(
        'server_name = "from-file"\nmax_body_bytes = 4096\nresume_grace_seconds = 5\n'
    )
    env = {
        "MEETPLATFORM_CONFIG": "m.toml",
        "MEETPLATFORM_SERVER_NAME": "from-env",
        "MEETPLATFORM_MAX_BODY_BYTES": "8192",
    }
    config = load(tmp_path, {"server_name": "from-cli"}, env)
    assert config.server_name == "from-cli"
    assert config.max_body_bytes == 8192
    assert config.resume_grace_seconds == 5.0
    assert config.max_query_bytes == 64 * 1024
    assert config.sources["server_name"] == "--server-name"
    assert config.sources["max_body_bytes"] == "MEETPLATFORM_MAX_BODY_BYTES"
    assert config.sources["resume_grace_seconds"].endswith("key 'resume_grace_seconds'")


def test_config_option_beats_config_variable(tmp_path: Path) -> None:
    """--config names the file even when MEETPLATFORM_CONFIG names another."""
    (tmp_path / "a.toml").write_text('server_name = "a"\n')
    (tmp_path / "b.toml").write_text('server_name = "b"\n')
    config = load(tmp_path, {"config": "b.toml"}, {"MEETPLATFORM_CONFIG": "a.toml"})
    assert config.server_name == "b"
    assert config.config_file == tmp_path / "b.toml"


def test_empty_environment_variable_counts_as_unset(tmp_path: Path) -> None:
    """MEETPLATFORM_PUBLIC_URL= (as compose files pass it) leaves the derived default."""
    config = load(tmp_path, env={"MEETPLATFORM_PUBLIC_URL": "", "MEETPLATFORM_LISTEN": " "})
    assert config.public_url is None
    assert config.listen == ("tcp:8080",)


def test_every_key_can_come_from_the_file(tmp_path: Path) -> None:
    """The config file accepts every documented key in its natural TOML type."""
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "m.toml").write_text(
        """
listen = ["tcp:9000:interface=127.0.0.1", "tcp6:9001"]
public_url = "https://meet.example.org/"
data_dir = "../var"
secret_file = "/run/secrets/bbb"
checksum_algorithms = ["SHA256", "sha512"]
server_name = "Example Meet"
resume_grace_seconds = 12.5
max_query_bytes = 32768
max_body_bytes = 10_000_000
extra_origins = ["https://www.example.org"]
access_log = "access.log"
ice_servers = [
  "stun:stun.example.org:3478",
  { urls = ["turn:turn.example.org:3478"], username = "u", credential = "c" },
]
"""
    )
    config = load(tmp_path, {"config": "etc/m.toml"})
    assert config.listen == ("tcp:9000:interface=127.0.0.1", "tcp6:9001")
    assert config.public_url == "https://meet.example.org"
    assert config.data_dir == tmp_path / "var"
    assert config.secret_path == Path("/run/secrets/bbb")
    assert config.checksum_algorithms == ("sha256", "sha512")
    assert config.server_name == "Example Meet"
    assert config.resume_grace_seconds == 12.5
    assert config.max_query_bytes == 32768
    assert config.max_body_bytes == 10_000_000
    assert config.extra_origins == ("https://www.example.org",)
    assert config.access_log == tmp_path / "etc" / "access.log"
    assert config.ice_servers == (
        IceServer(("stun:stun.example.org:3478",)),
        IceServer(("turn:turn.example.org:3478",), "u", "c"),
    )
    settings = config.settings("x" * 20, "https://meet.example.org")
    assert settings.ice_servers == config.ice_servers
    assert settings.extra_origins == config.extra_origins


def test_environment_lists_are_split(tmp_path: Path) -> None:
    """List variables take several values separated by spaces (and commas where safe)."""
    config = load(tmp_path, env={
        "MEETPLATFORM_LISTEN": "tcp:9000 tcp:9001",
        "MEETPLATFORM_CHECKSUM_ALGORITHMS": "sha256, sha384",
        "MEETPLATFORM_EXTRA_ORIGINS": "https://a.example,https://b.example:8443",
        "MEETPLATFORM_ICE_SERVERS": '[{"urls": "stun:s.example"}]',
    })
    assert config.listen == ("tcp:9000", "tcp:9001")
    assert config.checksum_algorithms == ("sha256", "sha384")
    assert config.extra_origins == ("https://a.example", "https://b.example:8443")
    assert config.ice_servers == (IceServer(("stun:s.example",)),)


def test_relative_paths_follow_their_source(tmp_path: Path) -> None:
    """Relative paths on the command line are from the working directory, in a file from the file's."""
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "m.toml").write_text('data_dir = "data"\n')
    from_file = load(tmp_path, {"config": "conf/m.toml"})
    from_cli = load(tmp_path, {"config": "conf/m.toml", "data_dir": "other"})
    assert from_file.data_dir == tmp_path / "conf" / "data"
    assert from_cli.data_dir == tmp_path / "other"


# --- options (what twistd parses) -----------------------------------------------------------


def test_options_parse_repeated_listen(tmp_path: Path) -> None:
    """--listen can be given several times and replaces the default."""
    options = ConfigOptions(environ={}, cwd=tmp_path)
    options.parseOptions(["--listen", "tcp:9000", "--listen", "unix:/tmp/m.sock",
                          "--public-url", "https://meet.example.org",
                          "--checksum-algorithms", "sha1,sha256"])
    config = options.configuration
    assert config.listen == ("tcp:9000", "unix:/tmp/m.sock")
    assert config.checksum_algorithms == ("sha1", "sha256")
    assert config.public_url == "https://meet.example.org"


def test_options_report_problems_as_usage_errors(tmp_path: Path) -> None:
    """A bad value stops twistd with a usage error naming the option and the problem."""
    options = ConfigOptions(environ={"MEETPLATFORM_MAX_BODY_BYTES": "lots"}, cwd=tmp_path)
    with pytest.raises(usage.UsageError) as caught:
        options.parseOptions(["--listen", "tcp:notaport"])
    assert isinstance(caught.value, ConfigUsageError)
    assert len(caught.value.problems) == 2
    assert "--listen: invalid endpoint 'tcp:notaport'" in str(caught.value)
    assert "MEETPLATFORM_MAX_BODY_BYTES: expected a whole number, got 'lots'" in str(caught.value)


# --- validation ---------------------------------------------------------------------------


def test_all_problems_are_reported_at_once(tmp_path: Path) -> None:
    """Several bad values give one error listing each of them with where it came from."""
    text = problems_of(tmp_path, {
        "checksum_algorithms": "md5",
        "public_url": "ftp://example.org",
        "max_query_bytes": "12",
    }, {"MEETPLATFORM_RESUME_GRACE_SECONDS": "nan"})
    assert "--checksum-algorithms: unknown checksum algorithm 'md5'" in text
    assert "--public-url: 'ftp://example.org' must start with http:// or https://" in text
    assert "--max-query-bytes: must be between 1024 and 1.04858e+06, got 12" in text
    assert "MEETPLATFORM_RESUME_GRACE_SECONDS: expected a finite number" in text


@pytest.mark.parametrize("url, message", [
    ("example.org", "must start with http:// or https://"),
    ("https://", "has no host"),
    ("https://example.org/?x=1", "must not have a query"),
    ("https://user:pw@example.org", "credentials"),
    ("https://example.org:99999", "invalid port"),
])
def test_public_url_must_be_a_plain_http_url(tmp_path: Path, url: str, message: str) -> None:
    """--public-url refuses anything but an http(s) URL with a host and an optional path."""
    assert message in problems_of(tmp_path, {"public_url": url})


def test_public_url_keeps_a_path_prefix(tmp_path: Path) -> None:
    """A public URL under a reverse-proxy path keeps it, without the trailing slash."""
    config = load(tmp_path, {"public_url": "https://proxy.example.org/meet/"})
    assert config.settings("x" * 20, config.derived_public_url() or "").api_url == (
        "https://proxy.example.org/meet/bigbluebutton/api/"
    )


@pytest.mark.parametrize("listen, url", [
    ("tcp:8080", "http://127.0.0.1:8080"),
    ("tcp:80", "http://127.0.0.1"),
    ("tcp:8080:interface=0.0.0.0", "http://127.0.0.1:8080"),
    ("tcp:port=9000:interface=10.1.2.3", "http://10.1.2.3:9000"),
    ("tcp6:8080", "http://[::1]:8080"),
    ("tcp6:8080:interface=\\:\\:", "http://[::1]:8080"),
    ("tcp6:8080:interface=2001\\:db8\\:\\:1", "http://[2001:db8::1]:8080"),
    ("tcp6:8080:50:fd00\\:\\:5", "http://[fd00::5]:8080"),
    ("tcp:8080:10.0.0.7", "http://10.0.0.7:8080"),
    ("tcp:0", None),
])
def test_public_url_is_derived_from_the_first_listener(
    tmp_path: Path, listen: str, url: str | None
) -> None:
    """Without --public-url the URL is the first listener's, on loopback for any-interface."""
    config = load(tmp_path, {"listen": [listen, "tcp:9999"]})
    assert config.derived_public_url() == url


def test_port_zero_takes_the_bound_port(tmp_path: Path) -> None:
    """For tcp:0 the derived URL uses the port actually bound."""
    config = load(tmp_path, {"listen": ["tcp:0:interface=127.0.0.1"]})
    assert config.derived_public_url(port=41234) == "http://127.0.0.1:41234"


def test_unix_listener_first_needs_public_url(tmp_path: Path) -> None:
    """A UNIX socket has no URL of its own, so it needs --public-url when listed first."""
    assert "set --public-url" in problems_of(tmp_path, {"listen": ["unix:/tmp/m.sock"]})
    config = load(tmp_path, {"listen": ["unix:/tmp/m.sock"],
                             "public_url": "https://meet.example.org"})
    assert config.derived_public_url() == "https://meet.example.org"


@pytest.mark.parametrize("description, message", [
    ("8080", "Unknown endpoint type: '8080' (use e.g. tcp:8080"),
    ("tcp:http", "invalid literal"),
    ("ssl:443:privateKey=/nonexistent/key.pem", "cannot load the TLS key or certificate"),
    ("bogus:1", "Unknown endpoint type"),
])
def test_bad_endpoints_are_refused_before_starting(
    tmp_path: Path, description: str, message: str
) -> None:
    """Endpoint strings Twisted cannot parse (or TLS files that are missing) are config errors."""
    text = problems_of(tmp_path, {"listen": [description]})
    assert f"invalid endpoint {description!r}" in text
    assert message in text


def write_self_signed(path: Path) -> None:
    """Write a throwaway key and self-signed certificate into one PEM file."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(1)
        .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption())
        + cert.public_bytes(serialization.Encoding.PEM)
    )


def test_listener_parsing_reads_scheme_host_and_port(tmp_path: Path) -> None:
    """A TLS endpoint serves https on its interface; a UNIX one has no URL."""
    write_self_signed(tmp_path / "server.pem")
    tls = parse_listener(
        f"ssl:port=8443:privateKey={tmp_path / 'server.pem'}:interface=127.0.0.2"
    )
    unix = parse_listener("unix:/run/meet.sock")
    assert (tls.kind, tls.scheme, tls.host, tls.port) == ("ssl", "https", "127.0.0.2", 8443)
    assert (unix.kind, unix.scheme, unix.port) == ("unix", None, None)


def test_tls_and_unix_listeners_get_the_crowd_backlog_too(tmp_path: Path) -> None:
    """Every socket listener queues 1024 connections unless told otherwise; the rest of
    the description (TLS key, interface, escaped colons) is kept as written."""
    from twisted.internet.endpoints import serverFromString
    from twisted.internet.protocol import Factory
    from twisted.internet.testing import MemoryReactor

    write_self_signed(tmp_path / "server.pem")
    reactor = MemoryReactor()
    for description in (f"ssl:port=8443:privateKey={tmp_path / 'server.pem'}",
                        "unix:/run/meet.sock", r"tcp6:8080:interface=\:\:1"):
        serverFromString(reactor, with_backlog(description)).listen(Factory())
    assert reactor.sslServers[0][3] == 1024
    assert reactor.unixServers[0][2] == 1024
    assert reactor.tcpServers[0][2:] == (1024, "::1")
    assert with_backlog("tcp:8080:backlog=10") == "tcp:8080:backlog=10"
    assert with_backlog("systemd:domain=INET:index=0") == "systemd:domain=INET:index=0"


@pytest.mark.parametrize("description", [
    "tcp:0:backlog=99999999999999999999", "tcp:0:backlog=0", "tcp:0:backlog=-5",
    "tcp:8080:127.0.0.1:70000", "tcp6:8080:0", "unix:/run/meet.sock:666:100000",
])
def test_a_listen_queue_out_of_range_is_refused_before_binding(description: str) -> None:
    """A backlog (named or positional) outside 1..65535 is a configuration error naming
    the value; it used to fail only when binding, as "Python int too large"."""
    with pytest.raises(ValueError, match="backlog must be a whole number from 1 to 65535"):
        parse_listener(description)
    assert parse_listener("tcp:0:backlog=65535").kind == "tcp"


@given(st.integers(min_value=1, max_value=65535),
       st.ip_addresses(v=4).filter(lambda a: not a.is_unspecified))
def test_derived_url_names_the_listener_interface_and_port(port: int, address: object) -> None:
    """Any concrete IPv4 interface and port end up in the derived public URL."""
    config = load_config({"listen": [f"tcp:{port}:interface={address}"]}, {}, cwd=Path("/"))
    suffix = "" if port == 80 else f":{port}"
    assert config.derived_public_url() == f"http://{address}{suffix}"


def test_tls_listener_derives_an_https_url(tmp_path: Path) -> None:
    """An ssl: first listener makes the derived public URL https."""
    write_self_signed(tmp_path / "server.pem")
    config = load(tmp_path, {"listen": [f"ssl:443:privateKey={tmp_path / 'server.pem'}"]})
    assert config.derived_public_url() == "https://127.0.0.1"


def test_config_file_errors_name_the_file(tmp_path: Path) -> None:
    """A missing, unparsable or misspelt config file is reported with its path."""
    missing = problems_of(tmp_path, {"config": "nope.toml"})
    assert f"config file {tmp_path / 'nope.toml'}: cannot read it" in missing
    (tmp_path / "bad.toml").write_text("listen = [\n")
    assert "invalid TOML" in problems_of(tmp_path, {"config": "bad.toml"})
    (tmp_path / "typo.toml").write_text('lisen = ["tcp:1"]\nmax_body_bytes = true\n')
    text = problems_of(tmp_path, {"config": "typo.toml"})
    assert "unknown key 'lisen' (did you mean listen?)" in text
    assert "key 'max_body_bytes': expected a number, got a boolean" in text


def test_checksum_algorithms_are_normalised(tmp_path: Path) -> None:
    """Algorithm names are case-insensitive, deduplicated and must not be empty."""
    config = load(tmp_path, {"checksum_algorithms": "SHA256,sha256, sha1"})
    assert config.checksum_algorithms == ("sha256", "sha1")
    assert "needs at least one" in problems_of(tmp_path, {"checksum_algorithms": ","})


@pytest.mark.parametrize("value, message", [
    ("turn:turn.example.org", "needs a username and a credential"),
    ("http://stun.example.org", "is not a stun:, stuns:, turn: or turns: URL"),
    ('{"urls": []}', "needs 'urls'"),
    ('{"urls": "stun:x", "secret": 1}', "unknown ICE server field"),
    ("{not json", "invalid JSON"),
])
def test_bad_ice_servers_are_refused(tmp_path: Path, value: str, message: str) -> None:
    """ICE servers must be STUN/TURN URLs, and TURN needs credentials."""
    assert message in problems_of(tmp_path, {"ice_servers": [value]})


def test_ice_server_from_json_option(tmp_path: Path) -> None:
    """--ice-server takes a JSON RTCIceServer for TURN credentials."""
    config = load(tmp_path, {"ice_servers": [
        '{"urls": ["turns:t.example:5349"], "username": "u", "credential": "p"}',
    ]})
    assert config.ice_servers[0].as_json() == {
        "urls": ["turns:t.example:5349"], "username": "u", "credential": "p",
    }


def test_extra_origins_are_origins(tmp_path: Path) -> None:
    """Extra origins are normalised scheme://host[:port] and refuse paths."""
    config = load(tmp_path, {"extra_origins": ["HTTPS://Www.Example.org:443", "http://x.test:81"]})
    assert config.extra_origins == ("https://www.example.org", "http://x.test:81")
    assert "is not an origin" in problems_of(tmp_path, {"extra_origins": ["https://a.b/path"]})


def test_unknown_environment_variable_is_a_warning(tmp_path: Path) -> None:
    """A misspelt MEETPLATFORM_ variable is reported (with a suggestion) but does not stop start."""
    config = load(tmp_path, env={"MEETPLATFORM_LISTNE": "tcp:1", "OTHER": "x"})
    assert config.listen == ("tcp:8080",)
    assert config.warnings == (
        (
            "environment variable MEETPLATFORM_LISTNE is not a meetplatform setting and is "
            "ignored (did you mean MEETPLATFORM_LISTEN?)"
        ),
    )


def test_plain_http_public_url_warns_about_media(tmp_path: Path) -> None:
    """A non-loopback http:// public URL warns that browsers will refuse camera and microphone."""
    config = load(tmp_path, {"public_url": "http://meet.example.org"})
    assert any("camera and microphone" in warning for warning in config.warnings)
    assert load(tmp_path, {"public_url": "http://localhost:8080"}).warnings == ()


# --- the secret -----------------------------------------------------------------------------


def test_first_start_generates_a_private_secret(tmp_path: Path) -> None:
    """The first start creates the data directory (0700) and a strong secret file (0600)."""
    config = load(tmp_path)
    loaded = load_or_create_secret(config)
    assert loaded.generated
    assert loaded.path == tmp_path / "meetplatform-data" / "secret"
    assert len(loaded.value) == 48 and int(loaded.value, 16) >= 0
    assert stat.S_IMODE(os.stat(config.data_dir).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(loaded.path).st_mode) == 0o600
    assert loaded.path.read_text() == loaded.value + "\n"
    assert loaded.warnings == ()
    assert sorted(p.name for p in config.data_dir.iterdir()) == ["secret"]
    again = load_or_create_secret(config)
    assert (again.value, again.generated) == (loaded.value, False)


def test_rotating_means_editing_the_file(tmp_path: Path) -> None:
    """A secret written into the file by the operator is used as is (surrounding whitespace dropped)."""
    config = load(tmp_path)
    load_or_create_secret(config)
    config.secret_path.write_text("  a-new-secret-from-the-operator \n")
    assert load_or_create_secret(config).value == "a-new-secret-from-the-operator"


def test_explicit_secret_file_is_never_generated(tmp_path: Path) -> None:
    """A configured --secret-file that does not exist stops the start with its path."""
    config = load(tmp_path, {"secret_file": "missing-secret"})
    with pytest.raises(SecretError, match="missing-secret does not exist"):
        load_or_create_secret(config)
    assert not (tmp_path / "missing-secret").exists()


@pytest.mark.parametrize("content, message", [
    ("", "is empty"),
    ("two words\n", "without spaces"),
    ("x" * 5000, "larger than 4096 bytes"),
])
def test_unusable_secret_files_are_refused(tmp_path: Path, content: str, message: str) -> None:
    """Empty, multi-word or oversized secret files are refused with what is wrong."""
    path = tmp_path / "s"
    path.write_text(content)
    with pytest.raises(SecretError, match=message):
        read_secret(path)


def test_weak_or_exposed_secret_warns(tmp_path: Path) -> None:
    """A short secret or one readable by other users loads but with warnings."""
    path = tmp_path / "s"
    path.write_text("short\n")
    path.chmod(0o644)
    value, warnings = read_secret(path)
    assert value == "short"
    assert any("chmod 600" in w for w in warnings)
    assert any("only 5 characters" in w for w in warnings)


def test_secret_path_that_is_a_directory(tmp_path: Path) -> None:
    """A secret file path that is a directory gives a clear error."""
    with pytest.raises(SecretError, match="is a directory|not a regular file"):
        read_secret(tmp_path)


def test_data_dir_that_is_a_file(tmp_path: Path) -> None:
    """A data directory path that is a file stops the start."""
    (tmp_path / "meetplatform-data").write_text("")
    with pytest.raises(SecretError, match="exists but is not a directory"):
        load_or_create_secret(load(tmp_path))


def test_concurrent_generation_keeps_the_first_secret(tmp_path: Path) -> None:
    """Two processes generating at once end up with one secret: the first one written."""
    path = tmp_path / "secret"
    assert _write_new_secret(path, "first-secret-value-000")
    assert not _write_new_secret(path, "second-secret-value-00")
    assert path.read_text() == "first-secret-value-000\n"
    assert [p.name for p in tmp_path.iterdir()] == ["secret"]


def test_inspecting_creates_nothing(tmp_path: Path) -> None:
    """Checking a fresh configuration reports that a secret will be generated and creates nothing."""
    config = load(tmp_path)
    secret, notes = inspect_secret(config)
    assert secret is None
    assert "will be generated" in notes[0]
    assert list(tmp_path.iterdir()) == []


# --- operations: log level and format, metrics -------------------------------------------------


def test_log_level_and_format_from_every_source(tmp_path: Path) -> None:
    """`--log-level` takes a default and NAMESPACE=LEVEL items, from flags, env or file."""
    parsed = ConfigOptions(environ={}, cwd=tmp_path)
    parsed.parseOptions(["--log-level", "debug", "--log-level",
                         "meetplatform.signalling=WARN", "--log-format", "json"])
    config = parsed.configuration
    assert config.log_level == (("", "debug"), ("meetplatform.signalling", "warn"))
    assert config.log_format == "json"
    env = load(tmp_path, env={"MEETPLATFORM_LOG_LEVEL": "warn, meetplatform.restapi=debug",
                              "MEETPLATFORM_LOG_FORMAT": "text"})
    assert env.log_level == (("", "warn"), ("meetplatform.restapi", "debug"))
    (tmp_path / "m.toml").write_text('log_level = ["error", "twisted.web=info"]\n'
                                     'log_format = "json"\n')
    from_file = load(tmp_path, {"config": "m.toml"})
    assert from_file.log_level == (("", "error"), ("twisted.web", "info"))
    assert from_file.log_format == "json"
    default = load(tmp_path)
    assert (default.log_level, default.log_format) == ((), "text")


def test_bad_log_settings_are_named(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, {"log_level": ["verbose", "=debug"],
                                      "log_format": "xml"})
    assert "--log-level: unknown log level 'verbose'" in problems
    assert "--log-format: unknown log format 'xml' (choose from text, json)" in problems
    assert "is not a log namespace" in problems_of(tmp_path, {"log_level": ["a..b=debug"]})


def test_metrics_settings(tmp_path: Path) -> None:
    config = load(tmp_path, env={"MEETPLATFORM_METRICS_LISTEN": "tcp:9102:interface=127.0.0.1",
                                 "MEETPLATFORM_METRICS_TOKEN_FILE": "token"})
    assert config.metrics_listen == "tcp:9102:interface=127.0.0.1"
    assert config.metrics_token_file == tmp_path / "token"
    assert load(tmp_path).metrics_listen is None
    assert "--metrics-listen: invalid endpoint" in problems_of(
        tmp_path, {"metrics_listen": "nonsense:1"})
# --- the HTTP edge (issue 13) ---------------------------------------------------------------


def test_trusted_proxies_from_every_source(tmp_path: Path) -> None:
    """--trusted-proxy repeats, MEETPLATFORM_TRUSTED_PROXIES splits on spaces or commas, the
    file takes a list; networks are normalised and reach the Settings."""
    options = ConfigOptions(environ={}, cwd=tmp_path)
    options.parseOptions(["--trusted-proxy", "10.0.0.1/8", "--trusted-proxy", "::1"])
    assert options.configuration.trusted_proxies == ("10.0.0.0/8", "::1/128")
    env = load(tmp_path, env={"MEETPLATFORM_TRUSTED_PROXIES": "127.0.0.1 192.168.0.0/16"})
    assert env.trusted_proxies == ("127.0.0.1/32", "192.168.0.0/16")
    (tmp_path / "m.toml").write_text('trusted_proxies = ["172.16.0.0/12"]\n')
    from_file = load(tmp_path, {"config": "m.toml"})
    assert from_file.settings("s" * 32, "http://127.0.0.1:8080").trusted_proxies == (
        "172.16.0.0/12",)
    assert load(tmp_path).trusted_proxies == ()
    assert "'proxy.example' is not a network" in problems_of(
        tmp_path, {"trusted_proxies": ["proxy.example"]})


def test_request_head_timeout(tmp_path: Path) -> None:
    """--request-head-timeout defaults to 30 s and takes 1 to 3600 s."""
    assert load(tmp_path).request_head_timeout == 30.0
    config = load(tmp_path, env={"MEETPLATFORM_REQUEST_HEAD_TIMEOUT": "12.5"})
    assert config.settings("s" * 32, "http://127.0.0.1:8080").request_head_timeout == 12.5
    assert "must be between 1 and 3600" in problems_of(tmp_path, {"request_head_timeout": "0"})
