"""Basic authentication against htpasswd, group and role files (no HTTP: the authenticator alone)."""

from __future__ import annotations

import base64
import os
import threading
from pathlib import Path

import bcrypt
import pytest

from occipy import errors
from occipy.identity import _files, basic
from occipy.identity.base import ADMIN, DEFAULT_TENANT, MEMBER, READER, Credentials
from occipy.identity.basic import BasicAuthenticator


def hashed(password: str, rounds: int = 4) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds)).decode().replace("$2b$", "$2y$")


def basic_header(user: str, password: str) -> Credentials:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return Credentials(headers=[("authorization", f"Basic {token}")])


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(f"# users\nalice:{hashed('wonderland')}\nbob:{hashed('builder')}\n"
                        f"carol:{hashed('carol-pw')}\nmd5user:$apr1$abc$defghijklmnopqrstuvwx\n\n")
    groups = tmp_path / "groups"
    groups.write_text("project-a: alice bob\nproject-b: bob\n")
    roles = tmp_path / "roles"
    roles.write_text("admin: alice\nreader: bob\n")
    return {"htpasswd": htpasswd, "groups": groups, "roles": roles}


async def test_good_password_gives_the_principal_with_tenant_and_roles(files: dict[str, Path]) -> None:
    auth = BasicAuthenticator(files["htpasswd"], groups=files["groups"], roles=files["roles"])
    alice = await auth.authenticate(basic_header("alice", "wonderland"))
    assert alice is not None
    assert (alice.user, alice.tenant, alice.roles, alice.method) == ("alice", "project-a", {ADMIN}, "basic")
    bob = await auth.authenticate(basic_header("bob", "builder"))
    assert bob is not None and bob.tenant == "project-a"  # the first group that lists him
    assert bob.roles == {READER} and not bob.can_write


async def test_without_groups_everyone_is_in_the_default_tenant_as_member(files: dict[str, Path]) -> None:
    auth = BasicAuthenticator(files["htpasswd"])
    carol = await auth.authenticate(basic_header("carol", "carol-pw"))
    assert carol is not None and carol.tenant == DEFAULT_TENANT and carol.roles == {MEMBER}


async def test_a_user_in_no_group_is_refused(files: dict[str, Path]) -> None:
    auth = BasicAuthenticator(files["htpasswd"], groups=files["groups"])
    with pytest.raises(errors.Unauthorized) as caught:
        await auth.authenticate(basic_header("carol", "carol-pw"))
    assert caught.value.message == "wrong user name or password"
    assert caught.value.challenges == ('Basic realm="occipy", charset="UTF-8"',)


@pytest.mark.parametrize(("user", "password"), [
    ("alice", "wrong"), ("alice", ""), ("nobody", "wonderland"), ("md5user", "anything"), ("ALICE", "wonderland"),
])
async def test_wrong_credentials_are_refused_without_saying_which_part(
        files: dict[str, Path], user: str, password: str) -> None:
    auth = BasicAuthenticator(files["htpasswd"])
    with pytest.raises(errors.Unauthorized) as caught:
        await auth.authenticate(basic_header(user, password))
    assert caught.value.message == "wrong user name or password"


@pytest.mark.parametrize("header", ["Basic !!!notbase64", "Basic " + base64.b64encode(b"no-colon").decode(),
                                    "Basic " + base64.b64encode(b":nouser").decode(), "Basic"])
async def test_malformed_basic_credentials_are_refused(files: dict[str, Path], header: str) -> None:
    auth = BasicAuthenticator(files["htpasswd"])
    with pytest.raises(errors.Unauthorized):
        await auth.authenticate(Credentials(headers=[("authorization", header)]))


@pytest.mark.parametrize("headers", [[], [("authorization", "Bearer abc.def.ghi")], [("x-auth-token", "t")]])
async def test_other_credentials_are_not_basic_ones(files: dict[str, Path], headers: list[tuple[str, str]]) -> None:
    auth = BasicAuthenticator(files["htpasswd"])
    assert await auth.authenticate(Credentials(headers=headers)) is None


async def test_the_files_are_read_again_when_they_change(files: dict[str, Path]) -> None:
    auth = BasicAuthenticator(files["htpasswd"], groups=files["groups"], roles=files["roles"])
    assert await auth.authenticate(basic_header("alice", "wonderland")) is not None
    files["htpasswd"].write_text(f"alice:{hashed('new-password')}\ndave:{hashed('dave-pw')}\n")
    files["groups"].write_text("project-c: alice dave\n")
    files["roles"].write_text("reader: alice\n")
    with pytest.raises(errors.Unauthorized):  # the cached verification of the old password is void
        await auth.authenticate(basic_header("alice", "wonderland"))
    alice = await auth.authenticate(basic_header("alice", "new-password"))
    assert alice is not None and alice.tenant == "project-c" and alice.roles == {READER}
    dave = await auth.authenticate(basic_header("dave", "dave-pw"))
    assert dave is not None and dave.roles == {MEMBER}


async def test_a_broken_file_keeps_the_last_good_content(files: dict[str, Path]) -> None:
    auth = BasicAuthenticator(files["htpasswd"], roles=files["roles"])
    files["roles"].write_text("superuser: alice\n")  # not a role
    alice = await auth.authenticate(basic_header("alice", "wonderland"))
    assert alice is not None and alice.roles == {ADMIN}
    files["htpasswd"].unlink()
    assert await auth.authenticate(basic_header("alice", "wonderland")) is not None


def test_unreadable_or_malformed_files_are_refused_at_start(tmp_path: Path, files: dict[str, Path]) -> None:
    with pytest.raises(_files.FileFormatError, match="cannot read"):
        BasicAuthenticator(tmp_path / "missing")
    bad = tmp_path / "bad-htpasswd"
    bad.write_text("just-a-name\n")
    with pytest.raises(_files.FileFormatError, match="line 1"):
        BasicAuthenticator(bad)
    roles = tmp_path / "bad-roles"
    roles.write_text("admin: alice\nowner: bob\n")
    with pytest.raises(_files.FileFormatError, match="unknown role owner"):
        BasicAuthenticator(files["htpasswd"], roles=roles)


async def test_bcrypt_runs_off_the_event_loop_and_successes_are_cached(
        files: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = basic._checkpw

    def counting(password: bytes, hashed_value: bytes) -> bool:
        calls.append(threading.current_thread().name)
        return real(password, hashed_value)

    monkeypatch.setattr(basic, "_checkpw", counting)
    auth = BasicAuthenticator(files["htpasswd"])
    loop_thread = threading.current_thread().name
    for _ in range(3):
        assert await auth.authenticate(basic_header("alice", "wonderland")) is not None
    assert len(calls) == 1 and calls[0] != loop_thread
    for _ in range(2):  # failures are never cached
        with pytest.raises(errors.Unauthorized):
            await auth.authenticate(basic_header("alice", "wrong"))
    assert len(calls) == 3
    with pytest.raises(errors.Unauthorized):  # an unknown user costs a bcrypt check too
        await auth.authenticate(basic_header("nobody", "x"))
    assert len(calls) == 4


async def test_the_cache_expires(files: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = basic._checkpw
    monkeypatch.setattr(basic, "_checkpw", lambda p, h: calls.append(1) or real(p, h))
    auth = BasicAuthenticator(files["htpasswd"], cache_ttl=0.0)
    for _ in range(2):
        assert await auth.authenticate(basic_header("alice", "wonderland")) is not None
    assert len(calls) == 2


async def test_utf8_and_long_passwords(tmp_path: Path) -> None:
    long_password = "x" * 100  # bcrypt reads 72 bytes, as Apache's htpasswd does
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(f"jürgen:{hashed('pässwörd')}\nlong:{bcrypt.hashpw(b'x' * 72, bcrypt.gensalt(4)).decode()}\n")
    auth = BasicAuthenticator(htpasswd)
    assert await auth.authenticate(basic_header("jürgen", "pässwörd")) is not None
    assert await auth.authenticate(basic_header("long", long_password)) is not None


def test_group_files_merge_lines_and_keep_order() -> None:
    groups = _files.parse_groups("a: x y\n# comment\nb: y\na: z x\n", "g")
    assert groups == {"a": ["x", "y", "z"], "b": ["y"]}
    assert _files.membership(groups) == {"x": ["a"], "y": ["a", "b"], "z": ["a"]}
    with pytest.raises(_files.FileFormatError, match="line 1"):
        _files.parse_groups("two words: x\n", "g")


def test_watched_file_notices_a_replaced_file(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_text("a: x\n")
    watched = _files.WatchedFile(path, _files.parse_groups)
    assert watched.value == {"a": ["x"]}
    replacement = tmp_path / "f.new"
    replacement.write_text("b: y\n")
    os.replace(replacement, path)  # how editors and config management write
    assert watched.value == {"b": ["y"]}
