"""The parser cache is a pickle: it is only kept where nobody else can write, and only loaded when it is ours.

Each test points every cache candidate ($COMMERCEQL_CACHE_DIR, $XDG_CACHE_HOME, the temporary
folder) into its own tmp_path, so nothing here reads or writes the real user cache.
"""

from __future__ import annotations

import os
import pickle
import stat
from pathlib import Path

import pytest

from commerceql import parser as parser_module

QUERY = "FROM sales SHOW net_sales WHERE billing_region = 'Ohio' GROUP BY month SINCE -3m"


class _MakeDirectory:
    """Unpickling this creates a folder: a harmless stand-in for code an attacker would run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.mkdir, (str(self.marker),))


def _hostile_cache_file(path: Path, marker: Path) -> None:
    # Lark's layout: a hash line, then a pickle that Lark loads before it compares the hash.
    path.write_bytes(b"0" * 64 + b"\n" + pickle.dumps(_MakeDirectory(marker)))


@pytest.fixture
def places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Private folders for HOME, XDG_CACHE_HOME and the temporary folder; no explicit cache dir."""
    home, xdg, temp = tmp_path / "home", tmp_path / "xdg", tmp_path / "tmp"
    for folder in (home, xdg, temp):
        folder.mkdir(mode=0o700)
    monkeypatch.delenv("COMMERCEQL_CACHE_DIR", raising=False)
    monkeypatch.delenv("COMMERCEQL_NO_PARSER_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(xdg))
    monkeypatch.setattr(parser_module.tempfile, "tempdir", str(temp))
    return {"home": home, "xdg": xdg, "temp": temp, "root": tmp_path}


def _temp_fallback(places: dict[str, Path]) -> Path:
    return places["temp"] / f"commerceql-cache-{os.getuid()}"


def _parses(parser: object) -> None:
    tree = parser.parse(QUERY, start="start")  # type: ignore[attr-defined]
    [query] = parser_module._Builder(QUERY).transform(tree)
    assert [table.name for table in query.tables] == ["sales"]


def test_a_private_cache_directory_is_created_0700_and_used(places: dict[str, Path]) -> None:
    directory = parser_module._cache_dir()
    assert directory == places["xdg"] / "commerceql"
    assert stat.S_IMODE(directory.stat().st_mode) & 0o077 == 0
    assert directory.stat().st_uid == os.getuid()


def test_a_world_writable_cache_home_is_not_used(places: dict[str, Path]) -> None:
    # Anyone could rename XDG_CACHE_HOME/commerceql and put their own folder there.
    places["xdg"].chmod(0o777)
    assert parser_module._cache_dir() == _temp_fallback(places)
    _temp_fallback(places).rmdir()
    places["temp"].chmod(0o777)  # no sticky bit: not safe either
    assert parser_module._cache_dir() is None
    assert parser_module.cache_path() is None


def test_a_world_writable_cache_directory_itself_is_not_used(places: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    shared = places["root"] / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    monkeypatch.setenv("COMMERCEQL_CACHE_DIR", str(shared))
    assert parser_module._cache_dir() == places["xdg"] / "commerceql"
    group_writable = places["xdg"] / "commerceql"
    group_writable.chmod(0o770)
    assert parser_module._cache_dir() == _temp_fallback(places)


def test_a_sticky_shared_ancestor_like_tmp_is_fine(places: dict[str, Path]) -> None:
    places["temp"].chmod(0o1777)  # /tmp: others cannot rename entries they do not own
    places["xdg"].chmod(0o777)
    assert parser_module._cache_dir() == _temp_fallback(places)


def test_a_directory_owned_by_someone_else_is_not_used(places: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    for folder in (places["xdg"] / "commerceql", _temp_fallback(places)):
        folder.mkdir(mode=0o700)
    # The folders belong to the real user; pretend this process runs as another user.
    monkeypatch.setattr(parser_module.os, "getuid", lambda: os.stat(places["xdg"]).st_uid + 4242)
    assert parser_module._cache_dir() is None


def test_a_symbolic_link_in_place_of_the_directory_is_not_used(places: dict[str, Path]) -> None:
    elsewhere = places["root"] / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    (places["xdg"] / "commerceql").symlink_to(elsewhere)
    assert parser_module._cache_dir() == _temp_fallback(places)


def test_a_cache_file_others_can_write_is_never_unpickled(places: dict[str, Path]) -> None:
    path = parser_module.cache_path()
    assert path is not None
    marker = places["root"] / "payload-ran"
    _hostile_cache_file(path, marker)
    path.chmod(0o666)
    _parses(parser_module._build_parser())
    assert not marker.exists()
    # Lark rebuilt the parser and replaced the file with a private one of its own.
    info = path.stat()
    assert info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) == 0o600
    assert pickle.dumps(_MakeDirectory(marker)) not in path.read_bytes()


def test_the_owner_and_mode_check_is_what_stops_the_payload(places: dict[str, Path]) -> None:
    # The control experiment: the same file, private to this user, is unpickled (Lark trusts it).
    path = parser_module.cache_path()
    assert path is not None
    marker = places["root"] / "payload-ran"
    _hostile_cache_file(path, marker)
    path.chmod(0o600)
    _parses(parser_module._build_parser())
    assert marker.is_dir()


def test_a_cache_file_owned_by_someone_else_counts_as_missing(places: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    path = parser_module.cache_path()
    assert path is not None
    path.write_bytes(b"not a cache")
    path.chmod(0o600)
    with parser_module._open_trusted_cache(str(path)) as handle:  # ours: opened
        assert handle.read() == b"not a cache"
    monkeypatch.setattr(parser_module.os, "getuid", lambda: path.stat().st_uid + 4242)
    with pytest.raises(FileNotFoundError):
        parser_module._open_trusted_cache(str(path))


def test_a_symbolic_link_as_the_cache_file_is_not_followed(places: dict[str, Path]) -> None:
    path = parser_module.cache_path()
    assert path is not None
    marker = places["root"] / "payload-ran"
    target = places["root"] / "planted"
    _hostile_cache_file(target, marker)
    target.chmod(0o600)
    path.symlink_to(target)
    _parses(parser_module._build_parser())
    assert not marker.exists()
    assert not path.is_symlink() and stat.S_IMODE(path.stat().st_mode) == 0o600


def test_the_cache_round_trips_in_a_private_directory(places: dict[str, Path]) -> None:
    path = parser_module.cache_path()
    assert path is not None and not path.exists()
    _parses(parser_module._build_parser())
    written = path.read_bytes()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    _parses(parser_module._build_parser())  # loaded from the file, which stays as it was
    assert path.read_bytes() == written
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_without_a_safe_directory_the_parser_is_built_without_cache(places: dict[str, Path]) -> None:
    places["xdg"].chmod(0o777)
    places["temp"].chmod(0o777)
    assert parser_module.cache_path() is None
    _parses(parser_module._build_parser())
    assert not any(p.suffix == ".lark-cache" for p in places["root"].rglob("*"))
