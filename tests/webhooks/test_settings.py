"""The operator's settings for webhooks and history: allowed networks and retention."""

from __future__ import annotations

from pathlib import Path

import pytest

from meetplatform.config import ConfigError, ConfigOptions, load_config


def test_allowed_networks_from_every_source(tmp_path: Path) -> None:
    """--allow-webhook-network repeats; the environment takes a list; the file an array;
    values are normalised networks and reach the Settings."""
    options = ConfigOptions(environ={}, cwd=tmp_path)
    options.parseOptions(["--allow-webhook-network", "127.0.0.1/8",
                          "--allow-webhook-network", "fd00::/8"])
    config = options.configuration
    assert config.allow_webhook_networks == ("127.0.0.0/8", "fd00::/8")
    assert config.settings("s" * 20, "http://x").allow_webhook_networks == (
        "127.0.0.0/8", "fd00::/8")
    env = load_config({}, {"MEETPLATFORM_ALLOW_WEBHOOK_NETWORKS": "10.0.0.0/8 192.168.1.7"},
                      cwd=tmp_path)
    assert env.allow_webhook_networks == ("10.0.0.0/8", "192.168.1.7/32")
    config_file = tmp_path / "m.toml"
    config_file.write_text('allow_webhook_networks = ["100.64.0.0/10"]\n'
                           "history_retention_days = 30\n")
    from_file = load_config({"config": str(config_file)}, {}, cwd=tmp_path)
    assert from_file.allow_webhook_networks == ("100.64.0.0/10",)
    assert from_file.history_retention_days == 30
    assert load_config({}, {}, cwd=tmp_path).allow_webhook_networks == ()


def test_retention_defaults_to_a_year_and_accepts_zero(tmp_path: Path) -> None:
    """365 days unless set; 0 keeps everything; the value reaches the Settings."""
    assert load_config({}, {}, cwd=tmp_path).history_retention_days == 365
    config = load_config({"history_retention_days": "0"}, {}, cwd=tmp_path)
    assert config.settings("s" * 20, "http://x").history_retention_days == 0


@pytest.mark.parametrize(("cli", "message"), [
    ({"allow_webhook_networks": ["everything"]}, "is not a network"),
    ({"allow_webhook_networks": ["10.0.0.0/33"]}, "is not a network"),
    ({"history_retention_days": "-1"}, "must be between 0"),
    ({"history_retention_days": "a week"}, "expected a whole number"),
])
def test_bad_values_are_reported_with_their_origin(tmp_path: Path, cli: dict[str, object],
                                                   message: str) -> None:
    """A malformed network or retention is a configuration error naming the option."""
    with pytest.raises(ConfigError, match=message) as raised:
        load_config(cli, {}, cwd=tmp_path)
    assert raised.value.problems[0].startswith("--")
