"""The operator command: `meetplatform secret` and `meetplatform check`."""

from __future__ import annotations

import io
import stat
from pathlib import Path

from meetplatform import __version__
from meetplatform.cli import main
from meetplatform.config import load_config
from meetplatform.secret import load_or_create_secret


def run(tmp_path: Path, *argv: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), environ=env or {}, cwd=tmp_path, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def generate(tmp_path: Path, **cli: object) -> str:
    """Create the secret the way the service's first start does."""
    return load_or_create_secret(load_config(cli, {}, cwd=tmp_path)).value


def test_secret_prints_url_and_secret_like_bbb_conf(tmp_path: Path) -> None:
    """`meetplatform secret` prints the API URL and the shared secret, as `bbb-conf --secret` does."""
    secret = generate(tmp_path)
    code, out, err = run(tmp_path, "secret")
    assert code == 0, err
    assert out == (
        "URL: http://127.0.0.1:8080/bigbluebutton/\n"
        "API URL: http://127.0.0.1:8080/bigbluebutton/api/\n"
        f"Secret: {secret}\n"
    )
    assert err == ""


def test_secret_follows_data_dir_and_public_url(tmp_path: Path) -> None:
    """--data-dir and MEETPLATFORM_PUBLIC_URL pick the secret and URL of that installation."""
    secret = generate(tmp_path, data_dir="srv/data")
    code, out, _ = run(tmp_path, "secret", "--data-dir", "srv/data",
                       env={"MEETPLATFORM_PUBLIC_URL": "https://meet.example.org"})
    assert code == 0
    assert "API URL: https://meet.example.org/bigbluebutton/api/\n" in out
    assert f"Secret: {secret}\n" in out


def test_secret_from_config_file(tmp_path: Path) -> None:
    """--config gives the secret file and the listener the URL is derived from."""
    (tmp_path / "s").write_text("operator-chosen-secret-1234\n")
    (tmp_path / "s").chmod(0o600)
    (tmp_path / "m.toml").write_text('secret_file = "s"\nlisten = ["tcp:9443"]\n')
    code, out, err = run(tmp_path, "secret", "--config", "m.toml")
    assert (code, err) == (0, "")
    assert out.endswith("API URL: http://127.0.0.1:9443/bigbluebutton/api/\n"
                        "Secret: operator-chosen-secret-1234\n")


def test_secret_before_first_start_says_what_to_do(tmp_path: Path) -> None:
    """Without a secret yet, `secret` fails with status 1, explains, and creates nothing."""
    code, out, err = run(tmp_path, "secret")
    assert code == 1 and out == ""
    assert f"no secret yet: {tmp_path / 'meetplatform-data' / 'secret'} does not exist" in err
    assert "twistd -n meetplatform" in err
    assert list(tmp_path.iterdir()) == []


def test_secret_warns_about_exposed_file(tmp_path: Path) -> None:
    """A world-readable secret file is printed with a warning on stderr."""
    (tmp_path / "s").write_text("operator-chosen-secret-1234\n")
    (tmp_path / "s").chmod(0o644)
    code, out, err = run(tmp_path, "secret", "--secret-file", "s")
    assert code == 0 and "Secret: operator-chosen-secret-1234" in out
    assert "warning:" in err and "chmod 600" in err


def test_secret_with_port_zero_has_no_url_yet(tmp_path: Path) -> None:
    """With a tcp:0 listener the URL is only known once started; the secret is still printed."""
    secret = generate(tmp_path)
    code, out, _ = run(tmp_path, "secret", "--listen", "tcp:0")
    assert code == 0
    assert out.startswith("URL: unknown until the service starts")
    assert out.endswith(f"Secret: {secret}\n")


def test_check_accepts_the_defaults_and_creates_nothing(tmp_path: Path) -> None:
    """`meetplatform check` on a fresh machine says OK, exits 0 and does not create the data dir."""
    code, out, err = run(tmp_path, "check")
    assert code == 0, err
    assert "listen:" in out and "tcp:8080" in out
    assert "BBB API URL:" in out and "http://127.0.0.1:8080/bigbluebutton/api/" in out
    assert "generated on first start" in out
    assert out.endswith("meetplatform check: configuration OK\n")
    assert list(tmp_path.iterdir()) == []


def test_check_reports_every_problem(tmp_path: Path) -> None:
    """Bad values from options, environment and file are each reported; exit status 1."""
    (tmp_path / "m.toml").write_text('lisen = "tcp:1"\nmax_body_bytes = -1\n')
    code, out, err = run(
        tmp_path, "check", "--config", "m.toml", "--listen", "tcp:nope",
        env={"MEETPLATFORM_CHECKSUM_ALGORITHMS": "md5"},
    )
    assert code == 1 and out == ""
    lines = err.splitlines()
    assert lines[-1] == "meetplatform check: the configuration is NOT usable"
    assert any(line.startswith("error: --listen: invalid endpoint 'tcp:nope'") for line in lines)
    assert any("MEETPLATFORM_CHECKSUM_ALGORITHMS: unknown checksum algorithm 'md5'" in line
               for line in lines)
    assert any("unknown key 'lisen' (did you mean listen?)" in line for line in lines)
    assert any("key 'max_body_bytes': must be between" in line for line in lines)


def test_check_refuses_an_empty_secret_file(tmp_path: Path) -> None:
    """A configured secret file that is empty makes the configuration unusable."""
    (tmp_path / "s").write_text("\n")
    code, _, err = run(tmp_path, "check", "--secret-file", "s")
    assert code == 1
    assert f"error: secret file {tmp_path / 's'} is empty" in err


def test_check_refuses_a_data_dir_that_is_a_file(tmp_path: Path) -> None:
    """A data directory path occupied by a file is reported."""
    (tmp_path / "meetplatform-data").write_text("")
    code, _, err = run(tmp_path, "check")
    assert code == 1
    assert "is not a directory" in err


def test_check_refuses_an_access_log_in_a_missing_directory(tmp_path: Path) -> None:
    """--access-log into a directory that does not exist is reported before starting."""
    code, _, err = run(tmp_path, "check", "--access-log", "logs/access.log")
    assert code == 1
    assert f"access log {tmp_path / 'logs' / 'access.log'}: " in err


def test_check_shows_warnings_but_passes(tmp_path: Path) -> None:
    """Warnings (a misspelt variable, a plain-http public URL) do not fail the check."""
    generate(tmp_path)
    code, out, err = run(tmp_path, "check", "--public-url", "http://meet.example.org",
                         env={"MEETPLATFORM_DATADIR": "x"})
    assert code == 0
    assert "warning: environment variable MEETPLATFORM_DATADIR" in err
    assert "camera and microphone" in err
    assert "(present)" in out


def test_version_and_usage_errors(tmp_path: Path) -> None:
    """--version prints the version; no command or an unknown option is a usage error (2)."""
    assert run(tmp_path, "--version")[:2] == (0, f"meetplatform {__version__}\n")
    code, _, err = run(tmp_path)
    assert code == 2 and "choose a command: secret, check or clients" in err
    code, _, err = run(tmp_path, "check", "--frobnicate")
    assert code == 2 and "unrecognized arguments: --frobnicate" in err


def test_help_lists_the_configuration_options(tmp_path: Path) -> None:
    """`meetplatform check --help` documents every option with its environment variable."""
    code, out, _ = run(tmp_path, "check", "--help")
    assert code == 0
    for flag, env in (("--listen", "MEETPLATFORM_LISTEN"), ("--data-dir", "MEETPLATFORM_DATA_DIR"),
                      ("--ice-server", "MEETPLATFORM_ICE_SERVERS")):
        assert flag in out and env in out


def test_clients_commands_use_the_configured_data_dir(tmp_path: Path) -> None:
    """`meetplatform clients` runs with the same configuration, creating the data dir 0700."""
    code, out, err = run(tmp_path, "clients", "--data-dir", "d", "list", "--json")
    assert (code, err) == (0, "")
    assert out.strip() == "[]"
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o700
    code, _, err = run(tmp_path, "clients", "--max-body-bytes", "x", "list")
    assert code == 1 and "--max-body-bytes: expected a whole number" in err


def _clients_create_then_list(tmp_path: Path, data_dir: str, *argv: str) -> list[str]:
    """Run ``argv`` (a clients create); return the client names listed in ``data_dir``."""
    import json

    code, _, err = run(tmp_path, *argv)
    assert (code, err) == (0, ""), argv
    code, out, err = run(tmp_path, "clients", "list", "--json", "--data-dir", data_dir)
    assert (code, err) == (0, "")
    return [row["name"] for row in json.loads(out)]


def test_common_options_work_before_or_after_every_command(tmp_path: Path) -> None:
    """--data-dir (and every configuration option) is accepted before the command, after
    it, and after a clients sub-command: `clients create --name X --data-dir D` works."""
    argv: tuple[str, ...]
    for place, argv in {
        "before": ("--data-dir", "a", "clients", "create", "--name", "X"),
        "between": ("clients", "--data-dir", "b", "create", "--name", "X"),
        "after": ("clients", "create", "--name", "X", "--data-dir", "c"),
        "after, short": ("clients", "create", "--data-dir=d", "--name", "X", "--json"),
    }.items():
        directory = argv[argv.index("--data-dir") + 1] if "--data-dir" in argv else "d"
        assert _clients_create_then_list(tmp_path, directory, *argv) == ["X"], place
    for argv in (("--data-dir", "e", "clients", "list"), ("clients", "list", "--data-dir", "e")):
        code, out, err = run(tmp_path, *argv)
        assert (code, err) == (0, "") and "no clients yet" in out
    for argv in (("clients", "rotate", "mpc_x", "--data-dir", "e"),
                 ("--data-dir", "e", "clients", "revoke", "mpc_x")):
        code, _, err = run(tmp_path, *argv)
        assert code == 1 and "mpc_x" in err
    assert not (tmp_path / "meetplatform-data").exists()  # the default was never used
    secret = generate(tmp_path, data_dir="s")
    for argv in (("--data-dir", "s", "secret"), ("secret", "--data-dir", "s")):
        code, out, err = run(tmp_path, *argv)
        assert code == 0 and f"Secret: {secret}\n" in out, err
    for argv in (("--data-dir", "s", "check"), ("check", "--data-dir", "s")):
        code, out, err = run(tmp_path, *argv)
        assert code == 0 and f"{tmp_path / 's'}" in out, err


def test_options_given_at_several_levels_merge(tmp_path: Path) -> None:
    """A single-valued option given twice takes the last one (the innermost); a
    repeatable one collects the values of every level."""
    from meetplatform.cli import build_parser, config_from_arguments

    args = build_parser().parse_args([
        "--data-dir", "x", "--extra-origin", "https://a.example",
        "clients", "--extra-origin", "https://b.example",
        "create", "--name", "N", "--data-dir", "y", "--extra-origin", "https://c.example"])
    config = config_from_arguments(args, {}, tmp_path)
    assert config.data_dir == tmp_path / "y"
    assert config.extra_origins == ("https://a.example", "https://b.example",
                                    "https://c.example")


def test_check_shows_logs_and_metrics_and_refuses_a_short_token(tmp_path: Path) -> None:
    """`meetplatform check` tells the log level and format and where /metrics is served;
    a metrics token file that the service would refuse is a problem."""
    code, out, _ = run(tmp_path, "check")
    assert code == 0
    assert "  log:                 level info; format text\n" in out
    assert "  metrics:             off\n" in out
    (tmp_path / "token").write_text("x" * 32)
    code, out, _ = run(tmp_path, "check", "--log-level", "warn", "--log-level",
                       "meetplatform.signalling=debug", "--log-format", "json",
                       "--metrics-listen", "tcp:9102:interface=127.0.0.1",
                       "--metrics-token-file", "token")
    assert code == 0
    assert "level warn, meetplatform.signalling=debug; format json" in out
    assert "metrics:             tcp:9102:interface=127.0.0.1 (bearer token); public " in out
    (tmp_path / "token").write_text("short")
    code, _, err = run(tmp_path, "check", "--metrics-token-file", "token")
    assert code == 1
    assert "metrics token file" in err and "at least 16" in err
