"""The operator's command ``meetplatform``.

``meetplatform secret`` prints the API URL and the shared secret (what ``bbb-conf
--secret`` does on a BigBlueButton server); ``meetplatform check`` validates a configuration
without starting anything; ``meetplatform clients ...`` manages the JSON:API's client
applications (:mod:`meetplatform.clients_cli`). Every command reads the same options,
``MEETPLATFORM_*`` variables and config file as ``twistd meetplatform``
(:data:`meetplatform.config.KEYS`).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import TextIO

from meetplatform import __version__
from meetplatform.config import (
    CONFIG_ENV,
    KEYS,
    ConfigError,
    ServiceConfig,
    Settings,
    load_config,
    read_metrics_token,
    read_turn_secret,
)
from meetplatform.secret import (
    SecretError,
    ensure_data_dir,
    inspect_secret,
    read_secret,
)

CONFIG_GROUP = "configuration (the same as for twistd meetplatform)"

#: The configuration options are accepted at every level of a command line, before or
#: after the (sub-)command: ``meetplatform --data-dir D clients create --name X``,
#: ``meetplatform clients --data-dir D create ...`` and ``meetplatform clients create
#: --name X --data-dir D`` mean the same. argparse parses a sub-command into a fresh
#: namespace and copies it over the outer one, so each level stores its options under
#: its own names (:func:`_dest`) with no default (``SUPPRESS``: an option not given at
#: a level leaves nothing there), and :func:`config_from_arguments` merges the levels.
CONFIG_LEVELS = 3


def _dest(name: str, level: int) -> str:
    return name if level == 0 else f"{name}@{level}"


def add_config_arguments(parser: argparse.ArgumentParser, level: int = 0) -> None:
    """Give ``parser`` every configuration option of ``twistd meetplatform``.

    ``level`` is the parser's depth on the command line (0: ``meetplatform`` itself, 1:
    a command, 2: a sub-command); each level keeps its values apart until they are
    merged (see :data:`CONFIG_LEVELS`)."""
    group = parser.add_argument_group(CONFIG_GROUP)
    group.add_argument("-c", "--config", metavar="FILE", dest=_dest("config", level),
                       default=argparse.SUPPRESS,
                       help=f"read settings from this TOML file [env {CONFIG_ENV}]")
    for key in KEYS:
        help_text = f"{key.help} [env {key.env}; default: {key.default}]"
        metavar = key.flag.upper().replace("-", "_")
        group.add_argument(f"--{key.flag}", dest=_dest(key.name, level),
                           action="append" if key.repeatable else "store",
                           default=argparse.SUPPRESS, metavar=metavar, help=help_text)


def _merged(args: argparse.Namespace, name: str, repeatable: bool) -> object:
    """The value of option ``name`` over every level: a repeatable option collects the
    values of all levels in command-line order; otherwise the last one given wins."""
    values = [getattr(args, _dest(name, level)) for level in range(CONFIG_LEVELS)
              if hasattr(args, _dest(name, level))]
    if repeatable:
        return [item for value in values for item in value]
    return values[-1] if values else None


def config_from_arguments(
    args: argparse.Namespace, environ: Mapping[str, str], cwd: Path | None
) -> ServiceConfig:
    """The validated configuration for parsed ``args`` (raises ConfigError)."""
    cli: dict[str, object] = {"config": _merged(args, "config", False)}
    for key in KEYS:
        cli[key.name] = _merged(args, key.name, key.repeatable)
    return load_config(cli, environ, cwd=cwd)


def _describe_public_url(config: ServiceConfig) -> tuple[str | None, str]:
    url = config.derived_public_url()
    if config.public_url is not None:
        return url, "set by " + config.sources.get("public_url", "configuration")
    if url is None:
        return None, "decided at start: the first listener uses port 0"
    return url, "derived from the first listener"


def run_secret(config: ServiceConfig, out: TextIO, err: TextIO) -> int:
    """Print URL and secret; 1 when there is no readable secret."""
    path = config.secret_path
    if config.secret_file is None and not path.exists():
        err.write(
            f"meetplatform secret: no secret yet: {path} does not exist.\n"
            "It is generated when the service first starts (twistd -n meetplatform) "
            "with this data directory.\n"
        )
        return 1
    try:
        secret, warnings = read_secret(path)
    except SecretError as error:
        err.write(f"meetplatform secret: {error}\n")
        return 1
    url, how = _describe_public_url(config)
    if url is None:
        out.write(f"URL: unknown until the service starts ({how}; set --public-url)\n")
    else:
        out.write(f"URL: {url}/bigbluebutton/\n")
        out.write(f"API URL: {url}/bigbluebutton/api/\n")
    out.write(f"Secret: {secret}\n")
    err.writelines(f"warning: {warning}\n" for warning in (*config.warnings, *warnings))
    return 0


def _check_writable_dir(path: Path, what: str) -> str | None:
    if path.exists() and not path.is_dir():
        return f"{what} {path} is not a directory"
    if path.is_dir() and not os.access(path, os.W_OK | os.X_OK):
        return f"{what} {path} is not writable"
    return None


def _operations_lines(config: ServiceConfig) -> list[tuple[str, str]]:
    """The log level and format, and where /metrics is served."""
    levels = dict(config.log_level)
    described = [levels.pop("", "info"), *(f"{ns}={level}" for ns, level in levels.items())]
    metrics = [f"{config.metrics_listen} (no token)" if config.metrics_listen else "",
               "public listeners, bearer token" if config.metrics_token_file else ""]
    if config.metrics_listen and config.metrics_token_file:
        metrics[0] = f"{config.metrics_listen} (bearer token)"
    return [("log", f"level {', '.join(described)}; format {config.log_format}"),
            ("metrics", "; ".join(m for m in metrics if m) or "off")]


def run_check(config: ServiceConfig, out: TextIO, err: TextIO) -> int:
    """Report on everything the service would need; 0 when it would start."""
    problems: list[str] = []
    notes: list[str] = []
    problem = _check_writable_dir(config.data_dir, "data directory")
    if problem:
        problems.append(problem)
    try:
        secret, secret_notes = inspect_secret(config)
    except SecretError as error:
        problems.append(str(error))
        secret_state = "unusable"
    else:
        notes.extend(secret_notes)
        secret_state = "present" if secret is not None else "generated on first start"
    if config.access_log is not None:
        directory = config.access_log.parent
        if not directory.is_dir():
            problems.append(f"access log {config.access_log}: {directory} does not exist")
        elif not os.access(directory, os.W_OK | os.X_OK) and not (
            config.access_log.exists() and os.access(config.access_log, os.W_OK)
        ):
            problems.append(f"access log {config.access_log} is not writable")

    if config.metrics_token_file is not None:
        try:
            read_metrics_token(config.metrics_token_file)
        except ConfigError as error:
            problems.extend(error.problems)

    if config.turn_secret_file is not None:
        try:
            read_turn_secret(config.turn_secret_file)
        except ConfigError as error:
            problems.extend(error.problems)

    url, how = _describe_public_url(config)
    lines = [
        ("config file", str(config.config_file) if config.config_file else "none"),
        ("listen", ", ".join(config.listen)),
        ("public URL", f"{url} ({how})" if url else how),
        ("BBB API URL", f"{url}/bigbluebutton/api/" if url else "known at start"),
        ("data directory", str(config.data_dir)),
        ("secret file", f"{config.secret_path} ({secret_state})"),
        ("checksum algorithms", ", ".join(config.checksum_algorithms)),
        ("access log", str(config.access_log) if config.access_log else "off"),
        *_operations_lines(config),
        ("TURN", (f"{' '.join(config.turn_uris)} (credentials minted per participant, "
                  f"valid {config.turn_ttl} s; secret in {config.turn_secret_file})"
                  if config.turn_uris else "none minted")),
        ("ICE policy", config.ice_transport_policy),
    ]
    from meetplatform.media.check import inspect_media

    media = inspect_media(config)
    lines += media.lines
    notes += media.notes
    problems += media.problems
    width = max(len(label) for label, _ in lines)
    out.writelines(f"  {label + ':':<{width + 1}} {value}\n" for label, value in lines)
    out.writelines(f"note: {note}\n" for note in notes)
    err.writelines(f"warning: {warning}\n" for warning in config.warnings)
    if problems:
        err.writelines(f"error: {problem}\n" for problem in problems)
        err.write("meetplatform check: the configuration is NOT usable\n")
        return 1
    out.write("meetplatform check: configuration OK\n")
    return 0


def settings_for_tools(config: ServiceConfig) -> Settings:
    """Settings for offline tools (``clients``): the data directory is what they use.

    The data directory is created as the service would create it; the secret is the
    stored one, or empty when the service has not generated it yet.
    """
    ensure_data_dir(config.data_dir)
    try:
        secret, _ = read_secret(config.secret_path)
    except SecretError:
        secret = ""
    return config.settings(secret, config.derived_public_url() or "http://127.0.0.1")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="meetplatform",
        description="Administer a meetplatform server. The service itself runs with "
        "`twistd -n meetplatform`.",
    )
    parser.add_argument("--version", action="version", version=f"meetplatform {__version__}")
    add_config_arguments(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    secret = commands.add_parser(
        "secret", help="print the API URL and the shared secret (like bbb-conf --secret)",
        description="Print the BigBlueButton API URL and the shared secret integrations "
        "need, as `bbb-conf --secret` does. Give the same options (or environment, or "
        "--config) as the running service.",
    )
    add_config_arguments(secret, 1)
    check = commands.add_parser(
        "check", help="validate the configuration without starting",
        description="Validate a configuration (options, MEETPLATFORM_* environment "
        "variables and the --config file) without starting the service or creating "
        "anything. Exit status 0 when the service would start with it, 1 otherwise.",
    )
    add_config_arguments(check, 1)
    from meetplatform import clients_cli, nodes_cli

    clients = clients_cli.add_parser(
        commands, common=lambda sub: add_config_arguments(sub, 2))
    add_config_arguments(clients, 1)
    nodes = nodes_cli.add_parser(commands, common=lambda sub: add_config_arguments(sub, 2))
    add_config_arguments(nodes, 1)
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run one command; return the process exit status (2 for usage errors)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    environ = os.environ if environ is None else environ
    out = sys.stdout if stdout is None else stdout
    err = sys.stderr if stderr is None else stderr
    parser = build_parser()
    try:
        with redirect_stdout(out), redirect_stderr(err):
            args = parser.parse_args(argv)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 2
    if args.command is None:
        parser.print_usage(err)
        err.write("meetplatform: choose a command: secret, check or clients\n")
        return 2
    try:
        config = config_from_arguments(args, environ, cwd)
    except ConfigError as error:
        err.writelines(f"error: {problem}\n" for problem in error.problems)
        err.write(f"meetplatform {args.command}: the configuration is NOT usable\n")
        return 1
    if args.command == "secret":
        return run_secret(config, out, err)
    if args.command == "check":
        return run_check(config, out, err)
    try:
        settings = settings_for_tools(config)
    except SecretError as error:
        err.write(f"meetplatform {args.command}: {error}\n")
        return 1
    status: int = args.run(args, settings, out=out, err=err)
    return status


if __name__ == "__main__":
    sys.exit(main())
