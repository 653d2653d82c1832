"""The shared API secret: generated once into the data directory, read on every start.

BigBlueButton integrations sign every call with this secret. By default it lives in
``<data-dir>/secret`` (mode 0600, directory 0700) and is generated on the first start;
``--secret-file`` points at an existing file instead (which is then never generated).
Rotating it means writing a new value into the file and restarting the service.
"""

from __future__ import annotations

import os
import secrets
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from meetplatform.config import ServiceConfig

#: A secret file larger than this is not a secret file.
MAX_SECRET_BYTES = 4096
#: Secrets shorter than this are accepted with a warning.
WEAK_SECRET_LENGTH = 16


class SecretError(Exception):
    """The secret cannot be read or created; the message says what to do."""


@dataclass(frozen=True)
class LoadedSecret:
    value: str
    path: Path
    #: True when this call created the file (the service shows it once).
    generated: bool
    warnings: tuple[str, ...] = ()


def generate_secret() -> str:
    """A new random secret: 48 hex digits (192 bits), safe in any integration's settings."""
    return secrets.token_hex(24)


def validate_secret(text: str, path: Path) -> str:
    """The secret in a file's text, stripped of surrounding whitespace, or SecretError."""
    value = text.strip()
    if not value:
        raise SecretError(f"secret file {path} is empty; put the shared secret in it")
    if any(char.isspace() or not char.isprintable() for char in value):
        raise SecretError(
            f"secret file {path} must hold one line of printable characters without spaces"
        )
    return value


def read_secret(path: Path) -> tuple[str, tuple[str, ...]]:
    """Read and validate an existing secret file; return it and any warnings."""
    try:
        with path.open("rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise SecretError(f"secret file {path} is not a regular file")
            data = handle.read(MAX_SECRET_BYTES + 1)
    except FileNotFoundError:
        raise SecretError(f"secret file {path} does not exist") from None
    except IsADirectoryError:
        raise SecretError(f"secret file {path} is a directory") from None
    except OSError as error:
        raise SecretError(
            f"cannot read secret file {path}: {error.strerror or error}"
        ) from None
    if len(data) > MAX_SECRET_BYTES:
        raise SecretError(f"secret file {path} is larger than {MAX_SECRET_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SecretError(f"secret file {path} is not UTF-8 text") from None
    value = validate_secret(text, path)
    warnings: list[str] = []
    if info.st_mode & 0o077:
        warnings.append(
            f"secret file {path} is readable by other users "
            f"(mode {stat.S_IMODE(info.st_mode):04o}); run: chmod 600 {path}"
        )
    if len(value) < WEAK_SECRET_LENGTH:
        warnings.append(
            f"the secret in {path} is only {len(value)} characters long; "
            f"use at least {WEAK_SECRET_LENGTH} random characters"
        )
    return value, tuple(warnings)


def ensure_data_dir(path: Path) -> None:
    """Create the data directory (mode 0700) unless it exists; SecretError if unusable."""
    if path.is_dir():
        return
    if path.exists():
        raise SecretError(f"data directory {path} exists but is not a directory")
    try:
        path.mkdir(mode=0o700, parents=True)
        os.chmod(path, 0o700)
    except FileExistsError:
        pass  # created meanwhile by another process
    except OSError as error:
        raise SecretError(
            f"cannot create data directory {path}: {error.strerror or error}"
        ) from None


def _write_new_secret(path: Path, value: str) -> bool:
    """Create ``path`` holding ``value`` (0600) atomically; False if it already exists."""
    descriptor, temporary = tempfile.mkstemp(prefix=".secret-", dir=path.parent)
    try:
        # mkstemp creates the file 0600 whatever the umask.
        with os.fdopen(descriptor, "w", encoding="ascii") as handle:
            handle.write(value + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            # link() never replaces: a secret written meanwhile by another process wins.
            os.link(temporary, path)
        except FileExistsError:
            return False
        return True
    finally:
        os.unlink(temporary)


def load_or_create_secret(config: ServiceConfig) -> LoadedSecret:
    """The secret the service signs with, generating it into the data directory if needed.

    An explicitly configured ``secret_file`` must exist; the default one is created on
    the first start. The data directory is created in any case (the store lives there).
    """
    ensure_data_dir(config.data_dir)
    path = config.secret_path
    generated = False
    if config.secret_file is None and not path.exists():
        try:
            generated = _write_new_secret(path, generate_secret())
        except OSError as error:
            raise SecretError(
                f"cannot write a new secret into {path}: {error.strerror or error}"
            ) from None
    value, warnings = read_secret(path)
    return LoadedSecret(value, path, generated, warnings)


def inspect_secret(config: ServiceConfig) -> tuple[str | None, tuple[str, ...]]:
    """What ``meetplatform check`` reports about the secret, without creating anything.

    Returns the secret (None when it will be generated on first start) and notes.
    Raises SecretError when the service would fail to start.
    """
    path = config.secret_path
    if config.secret_file is None and not path.exists():
        directory = config.data_dir
        while not directory.exists() and directory != directory.parent:
            directory = directory.parent
        if not directory.is_dir():
            raise SecretError(f"data directory {config.data_dir} cannot be created: "
                              f"{directory} is not a directory")
        if not os.access(directory, os.W_OK | os.X_OK):
            raise SecretError(f"data directory {config.data_dir} cannot be created or "
                              f"written: {directory} is not writable")
        return None, (f"a new secret will be generated into {path} on first start",)
    value, warnings = read_secret(path)
    return value, warnings
