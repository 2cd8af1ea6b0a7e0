"""Real servers for tests: `callqa serve` on a free loopback port, and a throwaway PostgreSQL cluster."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from callqa.serving.process import free_port, start_serve, stop_tree
from callqa.serving.store import KeyStore


class Server:
    def __init__(self, base: str, log: Path, process: subprocess.Popen, keys: dict[str, str], store: KeyStore):
        self.base, self.log, self.process, self.keys, self.store = base, log, process, keys, store

    def post(self, path: str, body: bytes | dict, key: str | None = "scorer", headers: dict | None = None):
        data = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
        request = urllib.request.Request(self.base + path, data=data, method="POST",
                                         headers={"content-type": "application/json", **(headers or {})})
        if key:
            request.add_header("Authorization", f"Bearer {self.keys.get(key, key)}")
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"null")

    def get(self, path: str, key: str | None = None):
        request = urllib.request.Request(self.base + path)
        if key:
            request.add_header("Authorization", f"Bearer {self.keys[key]}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()


def start_server(bundle: Path, directory: Path, config: dict) -> tuple[subprocess.Popen, str, Path]:
    config_file = directory / "serving.yaml"
    config_file.write_text(json.dumps(config), encoding="utf-8")  # JSON is YAML
    log = directory / "server.log"
    env = dict(os.environ, CALLQA_SERVING_CONFIG=str(config_file), BENTOML_DO_NOT_TRACK="True")
    process, port = start_serve(bundle, log, "--config", str(config_file), env=env, cwd=directory)
    return process, f"http://127.0.0.1:{port}", log


def stop(process: subprocess.Popen) -> None:
    """Stop the server and every worker it started (they run in sessions of their own)."""
    stop_tree(process)


class Unavailable(RuntimeError):
    """A server a test needs cannot run on this machine; the message says why (the test skips with it)."""


class Postgres:
    """A throwaway PostgreSQL cluster from Debian's `postgresql` package, on a free loopback port."""

    def __init__(self) -> None:
        bindirs = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
        if not bindirs:
            raise Unavailable("no PostgreSQL server (Debian package postgresql; scripts/install-test-deps.sh "
                              "installs it when run as root)")
        self.bindir = bindirs[-1].parent
        # In /tmp itself: the server runs as `postgres` when we are root, and must reach its own directory.
        self.directory = Path(__import__("tempfile").mkdtemp(prefix="callqa-pg-"))
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            if shutil.which("runuser") is None:
                raise Unavailable("running as root without runuser: cannot start PostgreSQL as another user")
            try:
                shutil.chown(self.directory, "postgres")
            except LookupError:
                raise Unavailable("running as root and there is no `postgres` user to run the server as") from None
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.data = self.directory / "data"
        self.port = free_port()
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
        # -F (no fsync): these tests check SQL behaviour, not durability; the kill -9 test runs on SQLite.
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.directory / "server.log"), "-w", "-t", "60", "-o",
                  f"-p {self.port} -h 127.0.0.1 -k {self.directory} -F", "start")
        self._databases = 0

    def _run(self, tool: str, *args: str) -> None:
        done = subprocess.run([*self.as_user, str(self.bindir / tool), *args], capture_output=True, text=True)
        if done.returncode:
            raise Unavailable(f"{tool} failed: {(done.stderr or done.stdout)[-800:]}")

    def new_database(self) -> str:
        """A fresh, empty database; its SQLAlchemy URL."""
        import psycopg

        self._databases += 1
        name = f"t{self._databases}"
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True) as c:
            c.execute(f"CREATE DATABASE {name}")
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        subprocess.run([*self.as_user, str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(self.directory, ignore_errors=True)


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]


@contextmanager
def logged_in(server: Server, who: str, path: str = "/review/"):
    """A page of the web app at ``path`` in headless Chromium (a browser of its own), logged in with ``who``'s key."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS)
        page = browser.new_page()
        page.goto(f"{server.base}{path}")
        page.get_by_test_id("key").fill(server.keys[who])
        page.get_by_test_id("login").click()
        yield page
        browser.close()


@contextmanager
def reviewing(server: Server, who: str, call_id: str):
    """The review UI logged in as ``who`` with ``call_id`` opened from the queue."""
    from playwright.sync_api import expect

    with logged_in(server, who) as page:
        page.locator(f"#queue li[data-call-id='{call_id}']").click()
        expect(page.get_by_test_id("call-id")).to_have_text(call_id)
        yield page


def serve(bundle: Path, directory: Path, database: str | None = None, **config) -> Server:
    """A real `callqa serve` of ``bundle`` on SQLite (or ``database``) with a scorer key and two reviewer keys (anna,
    bo)."""
    database = database or f"sqlite:///{directory / 'callqa.db'}"
    keys = KeyStore(database)
    names = {"scorer": ("scorer", "scoring service"), "anna": ("reviewer", "Anna"), "bo": ("reviewer", "Bo")}
    created = {who: keys.create(role, name) for who, (role, name) in names.items()}
    config = {"database": database, "precision": "fp32", "review": {"sample_rate": 0.0, "lease_minutes": 5}, **config}
    process, base, log = start_server(bundle, directory, config)
    server = Server(base, log, process, {who: key for who, (key, _) in created.items()}, keys)
    server.key_ids = {who: row.id for who, (_, row) in created.items()}
    server.database = database
    return server
