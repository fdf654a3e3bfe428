"""The web console in a real browser against a real ``blobstore server`` cluster.

Headless Debian Chromium (``/usr/bin/chromium``, Debian package ``chromium``) driven by
Playwright for Python (the ``playwright`` PyPI package; its own browser download is never
used). Skipped, with the reason, when either is missing.

One scenario on its own cluster (it stops and kills processes, so it does not share the
session cluster): log in (a wrong secret is refused); see 3 metadata nodes with one leader
and 6 healthy chunkservers and the capacity chart; create a user (its secret is shown
once); create a bucket, upload a file through the browser's file picker, see it listed,
download it and compare the bytes; log in as the new user in a second browser context and
see neither the bucket nor the cluster pages; then crash a chunkserver (SIGSTOP the
supervisor so it cannot restart it, SIGKILL the chunkserver) and see the console mark it
unreachable at once and the catalog mark it suspect, then down (short detector timeouts
through ``BLOBSTORE_SUSPECT_AFTER_S`` / ``BLOBSTORE_DOWN_AFTER_S``), with the redundancy
page showing degraded chunks; SIGCONT the supervisor, which restarts the chunkserver, and
see everything healthy again; download the object once more and delete it.

Screenshots go to ``$BLOBSTORE_ARTIFACTS/console`` (default: the test's tmp_path).
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.cluster import Cluster, running_cluster

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SUSPECT_AFTER_S = 3
DOWN_AFTER_S = 8


def _playwright() -> Any:
    sync_api = pytest.importorskip(
        "playwright.sync_api",
        reason="Playwright for Python is not installed (pip install playwright)",
    )
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        pytest.skip("Chromium is not installed (Debian package chromium)")
    pytest.importorskip("jinja2", reason="the console needs jinja2")
    return sync_api


def _eventually(what: str, check: Callable[[], bool], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout_s:.0f} s: {what}")
        time.sleep(0.25)  # poll interval of a deadline-bounded wait


def _children(pid: int) -> dict[int, str]:
    """{pid: command line} of the direct children of ``pid`` (from /proc)."""
    out: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == pid:
                out[int(entry.name)] = (
                    (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                )
        except (OSError, ValueError, IndexError):
            continue
    return out


def _chunkserver_pid(cluster: Cluster, index: int) -> int:
    want = f"chunk-{index}"
    for pid, cmd in _children(cluster.pid).items():
        if " chunkserver " in cmd and re.search(rf"/{want}(\s|$)", cmd):
            return pid
    raise AssertionError(f"no {want} process under the server (pid {cluster.pid})")


@pytest.fixture(scope="module")
def console_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    _playwright()
    with pytest.MonkeyPatch.context() as mp:
        # the metadata leader's failure detector, made quick for the test
        mp.setenv("BLOBSTORE_SUSPECT_AFTER_S", str(SUSPECT_AFTER_S))
        mp.setenv("BLOBSTORE_DOWN_AFTER_S", str(DOWN_AFTER_S))
        with running_cluster(tmp_path_factory.mktemp("console-cluster")) as cluster:
            mp.delenv("BLOBSTORE_SUSPECT_AFTER_S")
            mp.delenv("BLOBSTORE_DOWN_AFTER_S")
            yield cluster


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    root = Path(os.environ.get("BLOBSTORE_ARTIFACTS") or tmp_path) / "console"
    root.mkdir(parents=True, exist_ok=True)
    return root


@pytest.fixture
def page(console_cluster: Cluster) -> Iterator[Any]:
    sync_api = _playwright()
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(
            base_url=console_cluster.endpoint_url, accept_downloads=True,
            viewport={"width": 1280, "height": 900},
        )  # fmt: skip
        pg = context.new_page()
        pg.set_default_timeout(30_000)
        errors: list[str] = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.on(
            "console",
            lambda m: errors.append(m.text) if m.type == "error" and "401" not in m.text else None,
        )
        pg.on("dialog", lambda d: d.accept())
        yield pg
        context.close()
        browser.close()
        assert not errors, f"errors in the browser console: {errors}"


def _health(pg: Any, address: str) -> str:
    row = pg.locator(f'#chunkservers tr[data-address="{address}"]')
    return str(row.get_attribute("data-health") or "") if row.count() else ""


def _state(pg: Any, address: str) -> str:
    row = pg.locator(f'#chunkservers tr[data-address="{address}"]')
    return str(row.get_attribute("data-state") or "") if row.count() else ""


def test_console_in_a_browser(
    console_cluster: Cluster, page: Any, artifacts: Path, tmp_path: Path
) -> None:
    cluster, pg = console_cluster, page
    shot = lambda name: pg.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)  # noqa: E731

    # -- nothing without logging in; wrong secret refused; then log in ----------------------
    pg.goto("/_console/cluster")
    assert "/_console/login" in pg.url
    shot("00-login")
    pg.fill("#access_key", cluster.access_key)
    pg.fill("#secret_key", "not-the-secret")
    pg.click("button[type=submit]")
    assert "Wrong access key or secret" in pg.inner_text("main")
    pg.fill("#access_key", cluster.access_key)
    pg.fill("#secret_key", cluster.secret_key)
    pg.click("button[type=submit]")
    pg.wait_for_url("**/_console/cluster")
    shot("01-cluster")

    # -- the nodes ---------------------------------------------------------------------------
    meta_rows = pg.locator("#meta-nodes tbody tr")
    assert meta_rows.count() == 3
    _eventually("a metadata leader", lambda: pg.locator("#meta-nodes .role-leader").count() == 1)
    assert re.fullmatch(r"node [123]", pg.inner_text("#leader"))
    _eventually(
        "6 healthy chunkservers",
        lambda: pg.locator('#chunkservers tr[data-health="ok"]').count() == 6,
    )
    pg.goto("/_console/capacity")
    assert pg.locator("#capacity-chart g.bar").count() == 6
    shot("02-capacity")

    # -- users and keys: create a user, its secret is shown once ------------------------------
    pg.goto("/_console/users")
    pg.fill("#create-user input[name=name]", "console-e2e-user")
    pg.click("#create-user button[type=submit]")
    user_key = pg.inner_text("#new-access-key").strip()
    user_secret = pg.inner_text("#new-secret-key").strip()
    assert user_key and len(user_secret) >= 20
    assert pg.locator('#users tr[data-user="console-e2e-user"]').count() == 1
    shot("02b-users")

    # -- create a bucket, upload through the file picker, see it listed ----------------------
    pg.goto("/_console/buckets")
    pg.fill("#create-bucket input[name=name]", "console-e2e")
    pg.click("#create-bucket button[type=submit]")
    pg.click('#buckets a:text-is("console-e2e")')
    pg.wait_for_url("**/_console/b/console-e2e")
    data = random.Random(8).randbytes(1_500_000)  # two stripes: 4+2 on all six chunkservers
    src = tmp_path / "upload.bin"
    src.write_bytes(data)
    pg.set_input_files("#upload-file", str(src))
    pg.click("#upload button[type=submit]")
    pg.wait_for_selector('#objects tr[data-key="upload.bin"]')
    assert "Uploaded 1 file" in pg.inner_text("#upload-status")
    shot("03-bucket")

    # -- download it and compare the bytes ---------------------------------------------------
    with pg.expect_download() as info:
        pg.click('#objects tr[data-key="upload.bin"] a.download')
    download = info.value
    assert download.suggested_filename == "upload.bin"
    assert Path(download.path()).read_bytes() == data

    pg.goto("/_console/buckets")
    row = pg.locator('#buckets tr[data-bucket="console-e2e"]')
    assert row.locator("td.objects").inner_text().strip() == "1"

    # -- the new (non-admin) user sees neither root's bucket nor the cluster pages ----------
    other = pg.context.browser.new_context(base_url=cluster.endpoint_url)
    try:
        up = other.new_page()
        up.goto("/_console/login")
        up.fill("#access_key", user_key)
        up.fill("#secret_key", user_secret)
        up.click("button[type=submit]")
        up.wait_for_url("**/_console/buckets")
        assert up.locator('#buckets tr[data-bucket="console-e2e"]').count() == 0
        assert "Cluster" not in up.inner_text("header nav")
        assert up.goto("/_console/cluster").status == 403
        assert up.goto("/_console/b/console-e2e").status == 403
        denied = up.request.get("/_console/b/console-e2e/object?key=upload.bin")
        assert denied.status == 403 and denied.body() != data
        up.goto("/_console/users")
        assert up.locator("#users tbody tr").count() == 1
        up.screenshot(path=str(artifacts / "03b-non-admin.png"), full_page=True)
    finally:
        other.close()

    pg.goto("/_console/redundancy")
    _eventually("all chunks full", lambda: pg.get_attribute("#redundancy", "data-state") == "full")
    assert int(pg.inner_text("#chunks-total")) >= 1
    shot("04-redundancy-full")

    # -- crash a chunkserver: shown unreachable, then suspect/down; redundancy degrades -----
    victim = _chunkserver_pid(cluster, 3)
    address = f"127.0.0.1:{cluster.ports.chunk + 2}"
    os.kill(cluster.pid, signal.SIGSTOP)  # the supervisor must not restart it yet
    try:
        os.kill(victim, signal.SIGKILL)
        pg.goto("/_console/cluster")
        _eventually(
            "the killed chunkserver shown unreachable/suspect/down",
            lambda: _health(pg, address) in ("unreachable", "suspect", "down"),
            timeout_s=30,
        )
        shot("05-chunkserver-unreachable")
        _eventually(
            "the catalog marks it suspect/down",
            lambda: _state(pg, address) in ("suspect", "down"),
            timeout_s=60,
        )
        _eventually("the catalog marks it down", lambda: _state(pg, address) == "down", 60)
        assert pg.locator('#chunkservers tr[data-health="ok"]').count() == 5
        shot("06-chunkserver-down")
        pg.goto("/_console/redundancy")
        _eventually(
            "degraded redundancy",
            lambda: int(pg.inner_text("#chunks-degraded")) >= 1,
            timeout_s=30,
        )
        assert pg.get_attribute("#redundancy", "data-state") in ("degraded", "at-risk")
        shot("07-redundancy-degraded")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(cluster.pid, signal.SIGCONT)  # the supervisor restarts the chunkserver

    # -- recovery ------------------------------------------------------------------------------
    pg.goto("/_console/cluster")
    _eventually(
        "the restarted chunkserver healthy",
        lambda: _health(pg, address) == "ok" and _state(pg, address) == "up",
        timeout_s=90,
    )
    _eventually(
        "6 healthy chunkservers again",
        lambda: pg.locator('#chunkservers tr[data-health="ok"]').count() == 6,
    )
    shot("08-recovered")
    pg.goto("/_console/redundancy")
    _eventually(
        "full redundancy again",
        lambda: pg.get_attribute("#redundancy", "data-state") == "full",
        timeout_s=90,
    )
    shot("09-redundancy-full-again")

    # -- and the object is still there, byte for byte ---------------------------------------
    pg.goto("/_console/b/console-e2e")
    with pg.expect_download() as info:
        pg.click('#objects tr[data-key="upload.bin"] a.download')
    assert Path(info.value.path()).read_bytes() == data

    # -- delete it (the confirmation dialog is accepted) -------------------------------------
    pg.click('#objects tr[data-key="upload.bin"] button.danger')
    pg.wait_for_selector('#objects tr[data-key="upload.bin"]', state="detached")
    assert "Nothing here yet" in pg.inner_text("#objects")
    shot("10-deleted")
