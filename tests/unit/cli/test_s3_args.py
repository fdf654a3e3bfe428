"""Argument parsing of the object commands, URL/size parsing and cp/sync path mapping."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from blobstore.cli import s3 as s3cli
from blobstore.cli.locations import (
    S3Url,
    dir_prefix,
    join,
    list_sync_root,
    parse_s3_url,
    plan_cp,
    safe_rel,
)
from blobstore.cli.main import main as blobstore_main
from blobstore.cli.syncplan import PathFilter
from blobstore.errors import ConfigError
from tests.unit.cli.fakes3 import FakeS3

MiB = 1024 * 1024


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="blobstore")
    sub = p.add_subparsers(dest="command", required=True)
    s3cli.register(sub)
    return p


def test_every_command_registers_with_its_flags() -> None:
    p = parser()
    a = p.parse_args(["cp", "a", "s3://b/k", "-r", "--part-size", "16MiB", "--concurrency", "3"])
    assert (a.src, a.dst, a.recursive, a.part_size, a.concurrency) == (
        "a",
        "s3://b/k",
        True,
        16 * MiB,
        3,
    )
    a = p.parse_args(["sync", "s3://b", "d", "--checksum", "--delete", "--dry-run", "--json"])
    assert a.checksum and a.delete and a.dry_run and a.json and a.part_size == 8 * MiB
    a = p.parse_args(["sync", "d", "s3://b", "--exclude", "*.tmp", "--include", "k.tmp"])
    assert a.filters == [PathFilter(False, "*.tmp"), PathFilter(True, "k.tmp")]
    a = p.parse_args(["ls"])
    assert a.target is None and not a.recursive
    a = p.parse_args(["ls", "s3://b/p", "-r", "-H", "--endpoint", "http://h:1", "-q"])
    assert a.recursive and a.human and a.endpoint == "http://h:1" and a.quiet
    assert p.parse_args(["rb", "s3://b", "--force"]).force
    assert p.parse_args(["rm", "s3://b/k", "-r"]).recursive
    assert p.parse_args(["mb", "s3://b", "--profile", "x"]).profile == "x"
    assert p.parse_args(["cat", "s3://b/k"]).target == "s3://b/k"
    assert p.parse_args(["stat", "s3://b/k", "--data", "d"]).data == "d"
    a = p.parse_args(["mv", "d", "s3://b/p", "-r", "--dry-run", "--exclude", "*.tmp"])
    assert a.recursive and a.dry_run and a.filters == [PathFilter(False, "*.tmp")]
    assert p.parse_args(["presign", "s3://b/k"]).expires_in == 3600
    assert p.parse_args(["presign", "s3://b/k", "--expires-in", "60"]).expires_in == 60
    two = ("cp", "mv", "sync")
    for name in ("mb", "rb", "ls", "cp", "mv", "sync", "rm", "cat", "stat", "presign"):
        assert callable(p.parse_args([name, "s3://b/k", *(["x"] if name in two else [])]).func)


@pytest.mark.parametrize(
    "argv",
    [
        ["cp", "a"],
        ["cp", "a", "b", "--concurrency", "0"],
        ["cp", "a", "b", "--part-size", "x"],
        ["sync"],
        ["mb"],
        ["ls", "--bogus"],
        ["cp", "a", "b", "--part-size", "-1"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parser().parse_args(argv)
    assert exc.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_help_documents_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parser().parse_args(["cp", "--help"])
    out = capsys.readouterr().out
    assert "exit status:" in out and "130" in out and "usage or configuration" in out


def test_part_size_bounds_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert blobstore_main(["cp", "a", "s3://b/k", "--part-size", "1MiB"]) == 2
    assert "at least 5MiB" in capsys.readouterr().err
    assert blobstore_main(["cp", "a", "s3://b/k", "--part-size", "6GiB"]) == 2
    assert "at most 5GiB" in capsys.readouterr().err


def test_no_credentials_is_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    for var in (
        "BLOBSTORE_ENDPOINT",
        "BLOBSTORE_ACCESS_KEY",
        "BLOBSTORE_SECRET_KEY",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_PROFILE",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    assert blobstore_main(["ls"]) == 2
    assert capsys.readouterr().err.startswith("error: no credentials for http://127.0.0.1:9000")


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("8MiB", 8 * MiB),
        ("8M", 8 * MiB),
        ("8mb", 8 * MiB),
        ("512KiB", 512 * 1024),
        ("1G", 1024 * MiB),
        ("5242880", 5 * MiB),
        ("1.5MiB", 3 * MiB // 2),
    ],
)
def test_parse_size(text: str, size: int) -> None:
    assert s3cli.parse_size(text) == size


def test_parse_s3_url() -> None:
    assert parse_s3_url("s3://b") == S3Url("b", "")
    assert parse_s3_url("s3://b/") == S3Url("b", "")
    assert parse_s3_url("s3://b/a/b c") == S3Url("b", "a/b c")
    assert str(S3Url("b", "k")) == "s3://b/k"
    for bad in ("b/k", "s3://", "s3:///k", "http://b/k"):
        with pytest.raises(ConfigError):
            parse_s3_url(bad)


def test_safe_rel_and_dir_prefix() -> None:
    assert safe_rel("a/b.txt") and safe_rel("x")
    for bad in ("", "/etc/passwd", "../x", "a/../../x", "a//b", "a/"):
        assert not safe_rel(bad) or bad == "a/"
    assert not safe_rel("a//b")
    assert dir_prefix("") == "" and dir_prefix("p") == "p/" and dir_prefix("p/") == "p/"
    assert join(S3Url("b", "p/"), "x") == S3Url("b", "p/x")
    assert join(Path("d"), "x/y") == Path("d/x/y")


@pytest.fixture
def fake() -> FakeS3:
    s3 = FakeS3()
    s3.buckets["b"] = {}
    for key in ("dir/a.txt", "dir/sub/b.txt", "dir/", "dir/../evil", "dirx/c", "top"):
        s3.buckets["b"][key] = (b"x", "0" * 32, s3.now)
    return s3


def test_plan_cp_single_objects(fake: FakeS3, tmp_path: Path) -> None:
    f = tmp_path / "f.txt"
    f.write_text("hi")
    [j] = plan_cp(fake, str(f), "s3://b/", recursive=False)
    assert (j.op, j.dst) == ("upload", S3Url("b", "f.txt"))
    [j] = plan_cp(fake, str(f), "s3://b/x/y", recursive=False)
    assert j.dst == S3Url("b", "x/y")
    [j] = plan_cp(fake, "s3://b/dir/a.txt", str(tmp_path), recursive=False)
    assert (j.op, j.dst) == ("download", tmp_path / "a.txt")
    [j] = plan_cp(fake, "s3://b/top", "s3://c/p/", recursive=False)
    assert (j.op, j.dst) == ("copy", S3Url("c", "p/top"))
    with pytest.raises(ConfigError, match="directory"):
        plan_cp(fake, str(tmp_path), "s3://b/", recursive=False)
    with pytest.raises(ConfigError, match="one of"):
        plan_cp(fake, "a", "b", recursive=False)
    with pytest.raises(ConfigError, match="no such file"):
        plan_cp(fake, str(tmp_path / "nope"), "s3://b/", recursive=False)


def test_plan_cp_recursive(fake: FakeS3, tmp_path: Path) -> None:
    jobs = plan_cp(fake, "s3://b/dir", str(tmp_path / "out"), recursive=True)
    assert sorted(str(j.dst.relative_to(tmp_path)) for j in jobs if isinstance(j.dst, Path)) == [
        "out/a.txt",
        "out/sub/b.txt",
    ]  # fmt: skip  -- "dir/" marker, "dir/../evil" and "dirx/c" are skipped
    (tmp_path / "t" / "s").mkdir(parents=True)
    (tmp_path / "t" / "1").write_text("1")
    (tmp_path / "t" / "s" / "2").write_text("22")
    jobs = plan_cp(fake, str(tmp_path / "t"), "s3://b/up", recursive=True)
    assert [(j.dst, j.size) for j in jobs] == [(S3Url("b", "up/1"), 1), (S3Url("b", "up/s/2"), 2)]
    filtered = plan_cp(
        fake, str(tmp_path / "t"), "s3://b/", recursive=True, filters=[PathFilter(False, "s/*")]
    )
    assert [j.dst for j in filtered] == [S3Url("b", "1")]
    filtered = plan_cp(
        fake, "s3://b/dir", str(tmp_path), recursive=True, filters=[PathFilter(False, "a*")]
    )
    assert [j.src for j in filtered] == [S3Url("b", "dir/sub/b.txt")]
    jobs = plan_cp(fake, "s3://b/dir/", "s3://c", recursive=True)
    assert {j.dst for j in jobs} == {S3Url("c", "a.txt"), S3Url("c", "sub/b.txt")}


def test_list_sync_root(fake: FakeS3, tmp_path: Path) -> None:
    root, entries = list_sync_root(fake, "s3://b/dir")
    assert root == S3Url("b", "dir/") and sorted(entries) == ["a.txt", "sub/b.txt"]
    (tmp_path / "x").write_text("abc")
    root, entries = list_sync_root(fake, str(tmp_path))
    assert root == tmp_path and entries["x"].size == 3
    root, entries = list_sync_root(fake, str(tmp_path / "missing"))
    assert entries == {}
    with pytest.raises(ConfigError, match="no such directory"):  # a typo must not delete all
        list_sync_root(fake, str(tmp_path / "missing"), must_exist=True)
    with pytest.raises(ConfigError):
        list_sync_root(fake, str(tmp_path / "x"))
