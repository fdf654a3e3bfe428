"""``blobstore admin user ...``: the operations on a ``LocalCatalog`` and the command line
through blobstore's main entry point (the metadata connection replaced by the same
in-process catalog)."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blobstore.cli import admin
from blobstore.cli.main import EXIT_USAGE, build_parser, main
from blobstore.cli.users import (
    NewKey,
    UserInfo,
    add_key,
    add_user,
    list_users,
    new_key_pair,
    remove_key,
    remove_user,
)
from blobstore.client.catalog import LocalCatalog
from blobstore.errors import AccessDenied, ConfigError, InvalidArgument
from metadata.api import GetAccessKeyQuery
from metadata.fsm.commands import CreateBucket, PutAccessKey, PutUser


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


async def _owner_of(catalog: LocalCatalog, key: str) -> str:
    found = await catalog.query(GetAccessKeyQuery(key))
    assert isinstance(found, tuple)
    return str(found[1].name)


def test_key_pair_shape_and_uniqueness() -> None:
    pairs = {new_key_pair() for _ in range(200)}
    assert len(pairs) == 200
    for key, secret in pairs:
        assert re.fullmatch(r"BK[A-Z0-9]{18}", key)
        assert len(secret) == 40 and re.fullmatch(r"[A-Za-z0-9_-]+", secret)


async def test_add_user_stores_a_working_key() -> None:
    catalog = LocalCatalog()
    made = await add_user(catalog, "alice")
    assert made.user == "alice" and not made.is_admin
    found = await catalog.query(GetAccessKeyQuery(made.access_key))
    assert isinstance(found, tuple)
    key, user = found
    assert key.secret == made.secret_key and user.name == "alice" and not user.is_admin

    admin_key = await add_user(
        catalog, "ops", is_admin=True, access_key="OPSKEY", secret_key="s" * 8
    )
    assert admin_key == NewKey("ops", True, "OPSKEY", "s" * 8)
    assert await _owner_of(catalog, "OPSKEY") == "ops"


async def test_add_existing_user_fails_and_keeps_its_keys() -> None:
    catalog = LocalCatalog()
    first = await add_user(catalog, "alice")
    with pytest.raises(InvalidArgument, match="already exists"):
        await add_user(catalog, "alice", is_admin=True)
    assert await _owner_of(catalog, first.access_key) == "alice"
    assert [u.is_admin for u in await list_users(catalog)] == [False]


async def test_add_user_rejects_bad_input() -> None:
    catalog = LocalCatalog()
    with pytest.raises(InvalidArgument):
        await add_user(catalog, "has space")
    with pytest.raises(ConfigError):
        await add_user(catalog, "bob", access_key="ONLYKEY")
    with pytest.raises(ConfigError):
        await add_user(catalog, "bob", access_key="K", secret_key="short")
    assert await list_users(catalog) == ()


async def test_list_counts_buckets_per_owner() -> None:
    catalog = LocalCatalog()
    await add_user(catalog, "root", is_admin=True)
    await add_user(catalog, "alice")
    await add_user(catalog, "bob")
    for bucket, owner in [("alice-1", "alice"), ("alice-2", "alice"), ("root-1", "root")]:
        await catalog.execute(CreateBucket(bucket, owner))
    got = await list_users(catalog)
    assert [(u.name, u.is_admin, u.buckets) for u in got] == [
        ("alice", False, 2),
        ("bob", False, 0),
        ("root", True, 1),
    ]
    assert all(isinstance(u, UserInfo) and u.created_ms > 0 for u in got)


async def test_remove_user_deletes_all_its_keys_but_not_buckets() -> None:
    catalog = LocalCatalog()
    await add_user(catalog, "root", is_admin=True)
    first = await add_user(catalog, "alice")
    second = await add_key(catalog, "alice")
    await catalog.execute(CreateBucket("alices", "alice"))
    removed = await remove_user(catalog, "alice")
    assert (removed.access_keys, removed.buckets_left) == (2, 1)
    for key in (first.access_key, second.access_key):
        with pytest.raises(AccessDenied):
            await catalog.query(GetAccessKeyQuery(key))
    assert [u.name for u in await list_users(catalog)] == ["root"]
    with pytest.raises(InvalidArgument, match="does not exist"):
        await remove_user(catalog, "alice")


async def test_last_admin_is_protected_unless_forced() -> None:
    catalog = LocalCatalog()
    await add_user(catalog, "root", is_admin=True)
    with pytest.raises(InvalidArgument, match="last admin"):
        await remove_user(catalog, "root")
    await add_user(catalog, "ops", is_admin=True)
    await remove_user(catalog, "root")  # another admin remains
    removed = await remove_user(catalog, "ops", force=True)
    assert removed.name == "ops" and await list_users(catalog) == ()


async def test_key_add_and_remove() -> None:
    catalog = LocalCatalog()
    await add_user(catalog, "alice")
    extra = await add_key(catalog, "alice", access_key="ALICE2", secret_key="secret-2")
    assert await _owner_of(catalog, "ALICE2") == "alice" and extra.secret_key == "secret-2"
    await remove_key(catalog, "ALICE2")
    with pytest.raises(AccessDenied):
        await catalog.query(GetAccessKeyQuery("ALICE2"))
    with pytest.raises(InvalidArgument):
        await remove_key(catalog, "ALICE2")
    with pytest.raises(InvalidArgument, match="does not exist"):
        await add_key(catalog, "nobody")


async def test_key_of_another_user_cannot_be_taken_over() -> None:
    catalog = LocalCatalog()
    await add_user(catalog, "alice", access_key="SHARED", secret_key="alice-secret")
    await add_user(catalog, "bob")
    with pytest.raises(InvalidArgument):
        await add_key(catalog, "bob", access_key="SHARED", secret_key="bob-secret")
    assert await _owner_of(catalog, "SHARED") == "alice"


@settings(deadline=None, max_examples=25)
@given(
    ops=st.lists(
        st.tuples(st.sampled_from(["add", "remove", "key"]), st.sampled_from("abcd")),
        max_size=20,
    )
)
def test_list_matches_a_model(ops: list[tuple[str, str]]) -> None:
    """Any sequence of add/remove/key add leaves exactly the model's users, and every
    key handed out works iff its user still exists."""

    async def go() -> None:
        catalog = LocalCatalog()
        model: dict[str, list[str]] = {}
        handed: list[tuple[str, str]] = []
        for action, name in ops:
            try:
                if action == "add":
                    made = await add_user(catalog, name)
                    model[name] = [made.access_key]
                    handed.append((made.access_key, name))
                elif action == "key":
                    made = await add_key(catalog, name)
                    model[name].append(made.access_key)
                    handed.append((made.access_key, name))
                else:
                    removed = await remove_user(catalog, name)
                    assert removed.access_keys == len(model.pop(name))
            except InvalidArgument:
                assert (action == "add") == (name in model)
        assert [u.name for u in await list_users(catalog)] == sorted(model)
        for key, name in handed:
            if name in model and key in model[name]:
                assert await _owner_of(catalog, key) == name
            else:
                with pytest.raises(AccessDenied):
                    await catalog.query(GetAccessKeyQuery(key))

    asyncio.run(go())


# -- the command line ---------------------------------------------------------------------
class _NoTransport:
    closed = 0

    async def close(self) -> None:
        _NoTransport.closed += 1


@pytest.fixture
def catalog(monkeypatch: pytest.MonkeyPatch) -> LocalCatalog:
    """The in-process catalog every ``blobstore admin user`` invocation talks to."""
    shared = LocalCatalog()
    seen: list[argparse.Namespace] = []

    def connect(args: argparse.Namespace) -> tuple[LocalCatalog, _NoTransport]:
        seen.append(args)
        return shared, _NoTransport()

    monkeypatch.setattr(admin, "_user_connect", connect)
    return shared


def test_cli_add_list_remove_json(
    catalog: LocalCatalog, capsys: pytest.CaptureFixture[str]
) -> None:
    closed = _NoTransport.closed
    assert main(["admin", "user", "add", "alice", "--json"]) == 0
    made = json.loads(capsys.readouterr().out)
    assert made["user"] == "alice" and made["is_admin"] is False
    assert run(_owner_of(catalog, made["access_key"])) == "alice"

    assert main(["admin", "--json", "user", "add", "ops", "--admin"]) == 0  # admin-level flag
    assert json.loads(capsys.readouterr().out)["is_admin"] is True
    run(catalog.execute(CreateBucket("alices", "alice")))

    assert main(["admin", "user", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(u["name"], u["is_admin"], u["buckets"]) for u in listed] == [
        ("alice", False, 1),
        ("ops", True, 0),
    ]

    assert main(["admin", "user", "remove", "alice", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "name": "alice",
        "access_keys": 1,
        "buckets_left": 1,
    }
    assert _NoTransport.closed == closed + 4  # every command closed its connection


def test_cli_text_output(catalog: LocalCatalog, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["admin", "user", "add", "bob", "--access-key", "BOBKEY", "--secret-key", "bob-secret"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "access key:  BOBKEY" in out and "secret key:  bob-secret" in out
    assert "export AWS_ACCESS_KEY_ID=BOBKEY" in out

    assert (
        main(
            [
                "admin",
                "user",
                "key",
                "add",
                "bob",
                "--access-key",
                "BOB2",
                "--secret-key",
                "bob2-secret",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["admin", "user", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAME", "ADMIN", "BUCKETS", "CREATED", "ACCESS", "KEYS"]
    assert lines[1].split()[:3] == ["bob", "no", "0"]
    assert lines[1].split()[-1] in ("BOB2,BOBKEY", "BOBKEY,BOB2")  # key ids, never secrets
    assert "bob-secret" not in lines[1]

    assert main(["admin", "user", "key", "remove", "BOB2"]) == 0
    assert capsys.readouterr().out.strip() == "removed access key BOB2"
    assert main(["admin", "user", "remove", "bob"]) == 0
    assert capsys.readouterr().out.strip() == "removed user bob and 1 access key(s)"


def test_cli_errors_are_one_line(catalog: LocalCatalog, capsys: pytest.CaptureFixture[str]) -> None:
    run(catalog.execute(PutUser("root", True)))
    run(catalog.execute(PutAccessKey("ROOTKEY", "root-secret", "root")))
    assert main(["admin", "user", "remove", "root"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: InvalidArgument:") and "last admin" in err
    assert main(["admin", "user", "remove", "nobody"]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(["admin", "user", "add", "x", "--access-key", "ONLY"]) == 2  # usage
    assert "--secret-key" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["admin", "user"])  # no action
    assert exit_info.value.code == 2


def test_admin_tls_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Mutual TLS when the CA is set too (as in the roles); a CA without a certificate is
    a usage error, a certificate without a CA leaves the links plain."""
    (tmp_path / "cluster.secret").write_text("ab" * 32)
    base = ["admin", "--data", str(tmp_path), "--meta", "127.0.0.1:1"]
    assert main([*base, "--tls-ca", "/ca.pem", "status"]) == EXIT_USAGE
    monkeypatch.setenv("BLOBSTORE_TLS_CERT", "/cert.pem")
    monkeypatch.setenv("BLOBSTORE_TLS_KEY", "/key.pem")
    args = build_parser().parse_args([*base, "status"])
    assert (args.tls_cert, args.tls_key, args.tls_ca) == ("/cert.pem", "/key.pem", None)
    _, transport, _ = admin._connect(args)
    assert transport._ssl is None
    asyncio.run(transport.close())
