"""The wheel: what it contains, and that twistd finds the plugin from a normal install.

Works offline: the wheel is built without build isolation (setuptools and wheel come from
the test extra) and installed with --no-deps --no-index.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from meetplatform import __version__

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("meetplatform", "twisted", "setup.cfg", "pyproject.toml", "README.md")
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "dropin.cache", "*.egg-info")


def pip(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
        cwd=cwd, capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, f"pip {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A wheel built from a copy of the checkout (so the build leaves nothing in it)."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    source.mkdir()
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=IGNORED)
        else:
            shutil.copy2(path, source / name)
    pip("wheel", "--no-deps", "--no-build-isolation", "--no-index",
        "--wheel-dir", str(work / "dist"), str(source), cwd=work)
    (built,) = (work / "dist").glob("meetplatform-*.whl")
    yield built


def names(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


def test_wheel_has_the_plugin_but_not_a_twisted_package(wheel: Path) -> None:
    """The wheel ships twisted/plugins/meetplatform_plugin.py and no twisted/__init__.py."""
    contents = names(wheel)
    assert "twisted/plugins/meetplatform_plugin.py" in contents
    assert "twisted/__init__.py" not in contents
    assert "twisted/plugins/__init__.py" not in contents
    assert not any(name.endswith("dropin.cache") for name in contents)
    assert not any(name.startswith("tests/") for name in contents)
    assert wheel.name.startswith(f"meetplatform-{__version__}-")


def test_wheel_has_every_source_and_data_file(wheel: Path) -> None:
    """Every module and every template, stylesheet, script and schema of the package is shipped."""
    contents = names(wheel)
    expected = {
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "meetplatform").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }
    assert expected and not expected - contents, sorted(expected - contents)


def test_wheel_declares_the_console_command_and_dependencies(wheel: Path) -> None:
    """Installing the wheel gives the `meetplatform` command and pulls the runtime libraries."""
    with zipfile.ZipFile(wheel) as archive:
        info = f"meetplatform-{__version__}.dist-info"
        entry_points = archive.read(f"{info}/entry_points.txt").decode()
        metadata = archive.read(f"{info}/METADATA").decode()
    assert "meetplatform = meetplatform.cli:main" in entry_points
    for requirement in ("Twisted", "klein", "treq", "autobahn", "cryptography", "lxml"):
        assert f"Requires-Dist: {requirement}" in metadata


def test_twistd_finds_the_plugin_from_a_normal_install(
    wheel: Path, tmp_path: Path
) -> None:
    """After installing the wheel (not editable), `twistd --help` lists meetplatform from it."""
    target = tmp_path / "site"
    pip("install", "--no-deps", "--no-index", "--target", str(target), str(wheel),
        cwd=tmp_path)
    # -S: no site-packages processing, so no .pth file (an editable checkout) can
    # supply the plugin; the dependencies come from this interpreter's library dirs.
    paths = dict.fromkeys([str(target), sysconfig.get_paths()["purelib"],
                           sysconfig.get_paths()["platlib"]])
    env = {"PYTHONPATH": ":".join(paths), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    probe = (
        "import sys\n"
        "from twisted.plugin import getPlugins\n"
        "from twisted.application.service import IServiceMaker\n"
        "makers = {m.tapname: m for m in getPlugins(IServiceMaker)}\n"
        "import meetplatform, twisted.plugins\n"
        "print(makers['meetplatform'].options.__module__)\n"
        "print(meetplatform.__file__)\n"
        "print(repr(list(twisted.plugins.__path__)))\n"
        "sys.argv = ['twistd', '--help']\n"
        "from twisted.scripts.twistd import run\n"
        "run()\n"
    )
    result = subprocess.run([sys.executable, "-S", "-c", probe], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "meetplatform.tap"
    assert lines[1] == str(target / "meetplatform" / "__init__.py")
    # The installed plugin directory is searched (a copy installed in the test
    # environment itself, when there is one, may be found first; it names the same module).
    assert str(target / "twisted" / "plugins") in ast.literal_eval(lines[2])
    listed = [line.split() for line in lines[3:] if line.strip().startswith("meetplatform")]
    assert listed and listed[0][0] == "meetplatform"
    assert "BigBlueButton API" in result.stdout
