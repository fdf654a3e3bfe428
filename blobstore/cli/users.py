"""``blobstore admin user ...``: S3 users and their access keys, straight in the catalog.

Sub-commands (registered under ``blobstore admin`` by ``blobstore.cli.admin``)::

    admin user add NAME [--admin] [--access-key ID --secret-key KEY] [--json]
    admin user list [--json]
    admin user remove NAME [--force] [--json]
    admin user key add NAME [--access-key ID --secret-key KEY] [--json]
    admin user key remove ACCESS_KEY_ID [--json]

The operations are plain coroutines over a ``CatalogClient`` (``add_user``, ``list_users``,
``remove_user``, ``add_key``, ``remove_key``) so tests can run them on a ``LocalCatalog``;
``register`` wires them to argparse with the metadata connection of ``blobstore admin``.

Invariants: a new access key id is ``BK`` + 18 characters of ``[A-Z0-9]`` and its secret 40
URL-safe characters, both from ``secrets`` (never a seeded generator); ``remove`` refuses to
delete the last admin user unless ``--force``. A user's buckets are kept when the user is
removed (admins still reach them). The gateway caches access keys for a few seconds, so a
removed key may keep working that long.

Not listed: a user's access key ids -- the catalog has no query for them yet.
Must not import the gateway or the services: it only speaks catalog commands and queries.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import string
import sys
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from blobstore.client.catalog import CatalogClient
from blobstore.errors import ConfigError, InvalidArgument
from metadata.api import ListAccessKeysQuery, ListBucketsQuery, ListUsersQuery
from metadata.fsm.commands import DeleteAccessKey, DeleteUser, PutAccessKey, PutUser
from metadata.fsm.records import BucketRecord, UserRecord
from metadata.fsm.results import AccessKeySummary, UserDeleted

__all__ = [
    "KeyRemoved",
    "NewKey",
    "UserInfo",
    "UserRemoved",
    "add_key",
    "add_user",
    "list_users",
    "new_key_pair",
    "register",
    "remove_key",
    "remove_user",
]

ACCESS_KEY_PREFIX = "BK"
_KEY_ALPHABET = string.ascii_uppercase + string.digits


@dataclass(frozen=True, slots=True)
class NewKey:
    """A freshly stored access key (the only time its secret is shown)."""

    user: str
    is_admin: bool
    access_key: str
    secret_key: str


@dataclass(frozen=True, slots=True)
class UserInfo:
    name: str
    is_admin: bool
    created_ms: int
    buckets: int
    access_keys: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class UserRemoved:
    name: str
    access_keys: int
    buckets_left: int  # buckets the user still owns (kept; admins can reach them)


@dataclass(frozen=True, slots=True)
class KeyRemoved:
    access_key: str


class _Closeable(Protocol):
    async def close(self) -> None: ...


Connect = Callable[[argparse.Namespace], tuple[CatalogClient, _Closeable]]


def new_key_pair() -> tuple[str, str]:
    """A random (access key id, secret key): ``BK`` + 18 of [A-Z0-9], 40 URL-safe chars."""
    key = ACCESS_KEY_PREFIX + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(18))
    return key, secrets.token_urlsafe(30)


def _pair(access_key: str | None, secret_key: str | None) -> tuple[str, str]:
    if (access_key is None) != (secret_key is None):
        raise ConfigError("give both --access-key and --secret-key, or neither")
    if access_key is not None and secret_key is not None:
        if len(secret_key) < 8:
            raise ConfigError("--secret-key needs at least 8 characters")
        return access_key, secret_key
    return new_key_pair()


async def _users(catalog: CatalogClient) -> tuple[UserRecord, ...]:
    found = await catalog.query(ListUsersQuery())
    assert isinstance(found, tuple)
    return found


async def _find(catalog: CatalogClient, name: str) -> UserRecord | None:
    return next((u for u in await _users(catalog) if u.name == name), None)


async def add_user(
    catalog: CatalogClient,
    name: str,
    *,
    is_admin: bool = False,
    access_key: str | None = None,
    secret_key: str | None = None,
) -> NewKey:
    """Create user ``name`` and one access key (generated unless given).

    InvalidArgument if the user exists or a name/key is malformed. Not atomic: if storing
    the key fails the user exists without keys (``admin user key add`` gives it one).
    """
    key, secret = _pair(access_key, secret_key)
    if await _find(catalog, name) is not None:
        raise InvalidArgument(f"user {name!r} already exists", code="EntityAlreadyExists")
    await catalog.execute(PutUser(name, is_admin))
    await catalog.execute(PutAccessKey(key, secret, name))
    return NewKey(name, is_admin, key, secret)


async def add_key(
    catalog: CatalogClient,
    name: str,
    *,
    access_key: str | None = None,
    secret_key: str | None = None,
) -> NewKey:
    """One more access key for existing user ``name``."""
    key, secret = _pair(access_key, secret_key)
    user = await _find(catalog, name)
    if user is None:
        raise InvalidArgument(f"user {name!r} does not exist", code="NoSuchEntity")
    await catalog.execute(PutAccessKey(key, secret, name))
    return NewKey(name, user.is_admin, key, secret)


async def list_users(catalog: CatalogClient) -> tuple[UserInfo, ...]:
    """Every user with its admin flag, the number of buckets it owns and its key ids."""
    users = await _users(catalog)
    buckets = await catalog.query(ListBucketsQuery())
    assert isinstance(buckets, tuple)
    owned = Counter(b.owner for b in buckets if isinstance(b, BucketRecord))
    summaries = await catalog.query(ListAccessKeysQuery())
    assert isinstance(summaries, tuple)
    keys: dict[str, list[str]] = {}
    for k in summaries:
        assert isinstance(k, AccessKeySummary)
        keys.setdefault(k.user_name, []).append(k.access_key_id)
    return tuple(
        UserInfo(u.name, u.is_admin, u.created_ms, owned[u.name], tuple(keys.get(u.name, ())))
        for u in users
    )


async def remove_user(catalog: CatalogClient, name: str, *, force: bool = False) -> UserRemoved:
    """Delete user ``name`` and all its access keys (its buckets stay).

    Refuses to remove the last admin user unless ``force``."""
    users = await list_users(catalog)
    user = next((u for u in users if u.name == name), None)
    if user is None:
        raise InvalidArgument(f"user {name!r} does not exist", code="NoSuchEntity")
    admins = [u for u in users if u.is_admin]
    if user.is_admin and len(admins) == 1 and not force:
        raise InvalidArgument(
            f"{name!r} is the last admin user (use --force to remove it anyway)",
            code="LastAdmin",
        )
    result = await catalog.execute(DeleteUser(name))
    assert isinstance(result, UserDeleted)
    return UserRemoved(name, result.access_keys, user.buckets)


async def remove_key(catalog: CatalogClient, access_key: str) -> KeyRemoved:
    """Delete one access key (its user stays)."""
    await catalog.execute(DeleteAccessKey(access_key))
    return KeyRemoved(access_key)


# -- command line -------------------------------------------------------------------------
def _time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _print(result: object) -> None:
    match result:
        case NewKey():
            print(f"user:        {result.user}{' (admin)' if result.is_admin else ''}")
            print(f"access key:  {result.access_key}")
            print(f"secret key:  {result.secret_key}")
            print("(the secret is shown only now; use it e.g. as")
            print(f"  export AWS_ACCESS_KEY_ID={result.access_key}")
            print(f"  export AWS_SECRET_ACCESS_KEY={result.secret_key} )")
        case UserRemoved():
            print(f"removed user {result.name} and {result.access_keys} access key(s)")
            if result.buckets_left:
                print(f"note: {result.buckets_left} bucket(s) owned by {result.name} remain")
        case KeyRemoved():
            print(f"removed access key {result.access_key}")
        case tuple():
            print(f"{'NAME':<24} {'ADMIN':<5} {'BUCKETS':>7}  {'CREATED':<20}  ACCESS KEYS")
            for u in result:
                assert isinstance(u, UserInfo)
                admin = "yes" if u.is_admin else "no"
                created = _time(u.created_ms)
                keys = ",".join(u.access_keys) or "-"
                print(f"{u.name:<24} {admin:<5} {u.buckets:>7}  {created:<20}  {keys}")


def _doc(result: object) -> object:
    if isinstance(result, tuple):
        return [asdict(u) for u in result]
    return asdict(result)  # type: ignore[call-overload]


def _command(
    connect: Connect,
    op: Callable[[CatalogClient, argparse.Namespace], Coroutine[Any, Any, object]],
) -> Callable[[argparse.Namespace], int]:
    async def go(args: argparse.Namespace) -> object:
        catalog, transport = connect(args)
        try:
            return await op(catalog, args)
        finally:
            await transport.close()

    def run(args: argparse.Namespace) -> int:
        result = asyncio.run(go(args))
        if getattr(args, "json", False) or getattr(args, "user_json", False):
            json.dump(_doc(result), sys.stdout, indent=2)
            print()
        else:
            _print(result)
        return 0

    return run


async def _add(catalog: CatalogClient, args: argparse.Namespace) -> object:
    return await add_user(
        catalog,
        args.name,
        is_admin=args.admin,
        access_key=args.access_key,
        secret_key=args.secret_key,
    )


async def _list(catalog: CatalogClient, args: argparse.Namespace) -> object:
    return await list_users(catalog)


async def _remove(catalog: CatalogClient, args: argparse.Namespace) -> object:
    return await remove_user(catalog, args.name, force=args.force)


async def _key_add(catalog: CatalogClient, args: argparse.Namespace) -> object:
    return await add_key(catalog, args.name, access_key=args.access_key, secret_key=args.secret_key)


async def _key_remove(catalog: CatalogClient, args: argparse.Namespace) -> object:
    return await remove_key(catalog, args.access_key_id)


def _json_flag(p: argparse.ArgumentParser) -> None:
    # its own dest: a sub-parser default would overwrite ``blobstore admin --json``
    p.add_argument("--json", dest="user_json", action="store_true", help="JSON output")


def _pair_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--access-key", help="use this access key id instead of a generated one")
    p.add_argument("--secret-key", help="its secret (with --access-key; >= 8 characters)")


def register(
    cmds: argparse._SubParsersAction[argparse.ArgumentParser],
    connect: Connect,
) -> None:
    """Add ``user ...`` to ``blobstore admin``'s sub-commands."""
    user = cmds.add_parser("user", help="S3 users and their access keys")
    actions = user.add_subparsers(dest="user_action", metavar="ACTION")
    actions.required = True

    add = actions.add_parser("add", help="create a user and an access key, print them")
    add.add_argument("name")
    add.add_argument("--admin", action="store_true", help="may access every bucket")
    _pair_flags(add)
    _json_flag(add)
    add.set_defaults(func=_command(connect, _add))

    ls = actions.add_parser("list", help="users, admin flag, number of buckets")
    _json_flag(ls)
    ls.set_defaults(func=_command(connect, _list))

    rm = actions.add_parser("remove", help="delete a user and its access keys")
    rm.add_argument("name")
    rm.add_argument("--force", action="store_true", help="even the last admin user")
    _json_flag(rm)
    rm.set_defaults(func=_command(connect, _remove))

    key = actions.add_parser("key", help="add or remove one access key")
    key_actions = key.add_subparsers(dest="key_action", metavar="ACTION")
    key_actions.required = True
    kadd = key_actions.add_parser("add", help="another access key for a user")
    kadd.add_argument("name")
    _pair_flags(kadd)
    _json_flag(kadd)
    kadd.set_defaults(func=_command(connect, _key_add))
    krm = key_actions.add_parser("remove", help="delete an access key")
    krm.add_argument("access_key_id")
    _json_flag(krm)
    krm.set_defaults(func=_command(connect, _key_remove))
