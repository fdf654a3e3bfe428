"""ListObjectVersions against a brute-force oracle over both version tables."""

from __future__ import annotations

from typing import cast

from hypothesis import given, settings
from hypothesis import strategies as st

from metadata.fsm import keyspace as ks
from metadata.fsm.commands import ClientCommand, CreateBucket, DeleteObject, PutBucketVersioning
from metadata.fsm.kv import prefix_end
from metadata.fsm.records import ObjectRecord
from metadata.fsm.state import Catalog

from .helpers import obj

KEYS = ["a", "a/x", "a/y", "b", "b/z/1", "é"]
ops = st.lists(
    st.tuples(st.sampled_from(["put", "delete", "suspend", "enable"]), st.sampled_from(KEYS)),
    max_size=30,
)


def _build(script: list[tuple[str, str]]) -> Catalog:
    cat = Catalog()
    cat.apply(ClientCommand("", 0, 1, CreateBucket("bkt", "alice")))
    cat.apply(ClientCommand("", 0, 1, PutBucketVersioning("bkt", "Enabled")))
    for i, (kind, key) in enumerate(script):
        match kind:
            case "put":
                cmd: object = obj("bkt", key, b"x" * i, version_id=f"v{i}")
            case "delete":
                cmd = DeleteObject("bkt", key, marker_version_id=f"m{i}")
            case "suspend":
                cmd = PutBucketVersioning("bkt", "Suspended")
            case _:
                cmd = PutBucketVersioning("bkt", "Enabled")
        cat.apply(ClientCommand("", 0, i, cmd))  # type: ignore[arg-type]
    return cat


def _oracle(cat: Catalog, prefix: str, delimiter: str) -> list[tuple[str, str | None, bool]]:
    by_key: dict[str, list[ObjectRecord]] = {}
    for table in (ks.OBJECT, ks.VERSION):
        lo = ks.bucket_prefix(table, "bkt")
        for k, v in cat.kv.scan(lo, prefix_end(lo)):
            key = k[len(lo) :].split(b"\0")[0].decode()
            by_key.setdefault(key, []).append(cast(ObjectRecord, v))
    out: list[tuple[str, str | None, bool]] = []
    seen_cp: set[str] = set()
    for key in sorted(by_key, key=lambda s: s.encode()):
        if not key.startswith(prefix):
            continue
        rest = key[len(prefix) :]
        if delimiter and delimiter in rest:
            cp = prefix + rest[: rest.index(delimiter) + len(delimiter)]
            if cp not in seen_cp:
                seen_cp.add(cp)
                out.append((cp, None, False))
            continue
        versions = sorted(by_key[key], key=lambda r: r.seq, reverse=True)
        out += [(key, v.version_id, i == 0) for i, v in enumerate(versions)]
    return out


@settings(deadline=None, max_examples=60)
@given(
    ops,
    st.sampled_from(["", "a", "b/"]),
    st.sampled_from(["", "/"]),
    st.integers(1, 5),
)
def test_version_pagination_matches_oracle(
    script: list[tuple[str, str]], prefix: str, delimiter: str, page_size: int
) -> None:
    cat = _build(script)
    want = _oracle(cat, prefix, delimiter)
    got: list[tuple[str, str | None, bool]] = []
    km, vm = "", ""
    for _ in range(200):
        page = cat.list_object_versions(
            "bkt",
            prefix=prefix,
            delimiter=delimiter,
            key_marker=km,
            version_id_marker=vm,
            max_keys=page_size,
        )
        assert len(page.versions) + len(page.common_prefixes) <= page_size
        # within one page, entries come in listing order already; keep it
        got += [(v.key, v.version_id, v.is_latest) for v in page.versions]
        got += [(p, None, False) for p in page.common_prefixes]
        if not page.is_truncated:
            break
        km, vm = page.next_key_marker or "", page.next_version_id_marker or ""
    # compare as multisets in order of key, then the oracle's per-key order
    assert sorted(got, key=lambda e: e[0].encode()) == sorted(want, key=lambda e: e[0].encode())
    for key in {e[0] for e in want}:
        assert [e for e in got if e[0] == key] == [e for e in want if e[0] == key]


def test_latest_delete_marker_is_listed_first() -> None:
    cat = _build([("put", "a"), ("put", "a"), ("delete", "a")])
    page = cat.list_object_versions("bkt")
    assert [(v.version_id, v.is_latest, v.is_delete_marker) for v in page.versions] == [
        ("m2", True, True),
        ("v1", False, False),
        ("v0", False, False),
    ]
    assert cat.list_objects("bkt").contents == ()
