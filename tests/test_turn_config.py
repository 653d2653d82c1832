"""TURN settings: --turn-uri, --turn-secret-file, --turn-ttl, --ice-transport-policy;
and the credentials minted from them (coturn's use-auth-secret scheme)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from meetplatform.cli import run_check
from meetplatform.config import (
    ConfigError,
    ConfigOptions,
    ServiceConfig,
    load_config,
    read_turn_secret,
)
from meetplatform.media.turn import mint

SECRET = "north-0123456789abcdef"


def load(tmp_path: Path, cli: dict[str, object] | None = None,
         env: dict[str, str] | None = None) -> ServiceConfig:
    return load_config(cli or {}, env or {}, cwd=tmp_path)


def problems_of(tmp_path: Path, cli: dict[str, object] | None = None,
                env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, cli, env)
    return str(caught.value)


def test_mint_is_coturns_scheme() -> None:
    """username = expiry:user, credential = base64(HMAC-SHA1(secret, username)); the
    expected value was computed with ``openssl dgst -sha1 -hmac ... -binary | base64``."""
    assert mint(SECRET, "w_0123456789ab", 1700003600) == (
        "1700003600:w_0123456789ab", "00CKfgzJAJhePXpvUaRY436B3UM=")


def test_turn_options_from_every_source(tmp_path: Path) -> None:
    secret = tmp_path / "turn.secret"
    secret.write_text(SECRET + "\n")
    options = ConfigOptions(environ={}, cwd=tmp_path)
    options.parseOptions([
        "--turn-uri", "turn:turn.example.org:3478?transport=udp",
        "--turn-uri", "turns:turn.example.org:5349?transport=tcp",
        "--turn-secret-file", "turn.secret", "--turn-ttl", "900",
        "--ice-transport-policy", "relay"])
    config = options.configuration
    assert config.turn_uris == ("turn:turn.example.org:3478?transport=udp",
                                "turns:turn.example.org:5349?transport=tcp")
    assert config.turn_secret_file == secret and config.turn_ttl == 900
    assert config.ice_transport_policy == "relay"
    settings = config.settings("x" * 20, "https://meet.example.org",
                               read_turn_secret(secret))
    assert settings.turn_secret == SECRET and settings.turn_ttl == 900
    assert SECRET not in repr(settings)

    env = load(tmp_path, env={"MEETPLATFORM_TURN_URIS": "turn:[2001:db8::1]:3478 turn:t.example",
                              "MEETPLATFORM_TURN_SECRET_FILE": str(secret)})
    assert env.turn_uris == ("turn:[2001:db8::1]:3478", "turn:t.example")
    assert env.turn_ttl == 3600 and env.ice_transport_policy == "all"

    (tmp_path / "m.toml").write_text(
        'turn_uris = ["turn:turn.example.org"]\nturn_secret_file = "turn.secret"\n'
        'turn_ttl = 120\nice_transport_policy = "relay"\n')
    filed = load(tmp_path, {"config": "m.toml"})
    assert filed.turn_uris == ("turn:turn.example.org",) and filed.turn_ttl == 120


@pytest.mark.parametrize(("cli", "message"), [
    ({"turn_uris": ["stun:s.example"]}, "is not a TURN URI"),
    ({"turn_uris": ["turn:"]}, "is not a TURN URI"),
    ({"turn_uris": ["turn:t.example:99999"]}, "invalid port"),
    ({"turn_uris": ["turn:t.example?transport=sctp"]}, "is not a TURN URI"),
    ({"turn_uris": ["turn:t.example"]}, "--turn-uri needs --turn-secret-file"),
    ({"turn_secret_file": "s"}, "--turn-secret-file needs at least one --turn-uri"),
    ({"turn_ttl": "30"}, "must be between 60 and 604800"),
    ({"ice_transport_policy": "none"}, "unknown ICE transport policy"),
    ({"ice_transport_policy": "relay", "ice_servers": ["stun:s.example"]},
     "--ice-transport-policy relay needs a TURN server"),
])
def test_bad_turn_settings_are_refused(tmp_path: Path, cli: dict[str, object],
                                       message: str) -> None:
    assert message in problems_of(tmp_path, cli)


def test_relay_with_a_static_turn_server_is_fine(tmp_path: Path) -> None:
    config = load(tmp_path, {"ice_transport_policy": "relay", "ice_servers": [
        '{"urls": "turn:t.example", "username": "u", "credential": "c"}']})
    assert config.ice_transport_policy == "relay"


@pytest.mark.parametrize("content", ["short", "two words here and more", ""])
def test_check_refuses_a_bad_turn_secret_without_quoting_it(tmp_path: Path,
                                                            content: str) -> None:
    secret = tmp_path / "turn.secret"
    secret.write_text(content)
    config = load(tmp_path, {"turn_uris": ["turn:t.example"], "turn_secret_file": str(secret),
                             "data_dir": str(tmp_path / "data")})
    out, err = io.StringIO(), io.StringIO()
    assert run_check(config, out, err) == 1
    assert "TURN secret file" in err.getvalue()
    assert not content or content not in err.getvalue() + out.getvalue()


def test_check_describes_turn_and_never_shows_the_secret(tmp_path: Path) -> None:
    secret = tmp_path / "turn.secret"
    secret.write_text(SECRET)
    config = load(tmp_path, {"turn_uris": ["turn:t.example"], "turn_secret_file": str(secret),
                             "data_dir": str(tmp_path / "data")})
    out, err = io.StringIO(), io.StringIO()
    assert run_check(config, out, err) == 0, err.getvalue()
    assert "turn:t.example (credentials minted per participant, valid 3600 s" in out.getvalue()
    assert SECRET not in out.getvalue() + err.getvalue()
    missing = load(tmp_path, {"turn_uris": ["turn:t.example"],
                              "turn_secret_file": str(tmp_path / "nope"),
                              "data_dir": str(tmp_path / "data")})
    assert run_check(missing, io.StringIO(), err := io.StringIO()) == 1
    assert "cannot read it" in err.getvalue()
