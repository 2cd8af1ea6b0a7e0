"""The OpenAPI document is the contract (issue 30): schemathesis, as a user runs it, with every check and nothing
excluded, stateful links on, against a real server whose spec is made from its running config. A body the spec allows
is accepted (or refused with a documented status), a body it forbids is refused, every answer is as declared.

Run with more examples by hand (the issue's measure: at least 200 per operation):
    CALLQA_CONTRACT_EXAMPLES=200 pytest tests/test_contract.py
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from servers import Server, start_server, stop

from callqa.serving.store import KeyStore

from conftest import SAMPLE

EXAMPLES = int(os.environ.get("CALLQA_CONTRACT_EXAMPLES", "25"))


@pytest.fixture(scope="module")
def server(tiny_bundle, tmp_path_factory):
    """A server with stored calls, an agent whose calls they are, and one appeal (number 1) for rulings to reach."""
    directory = tmp_path_factory.mktemp("contract")
    database = f"sqlite:///{directory / 'callqa.db'}"
    store = KeyStore(database)
    calls = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()[:6]]
    agent = calls[0]["agent_id"]
    keys = {"admin": store.create("admin", "schemathesis")[0], "scorer": store.create("scorer", "seed")[0],
            "agent": store.create("agent", "坐席", agent)[0]}
    process, base, log = start_server(tiny_bundle, directory, {"database": database, "precision": "fp32",
                                                               "review": {"sample_rate": 0.0}})
    server = Server(base, log, process, keys, store)
    status, body = server.post("/score", {"calls": calls, "store": True}, key="scorer")
    assert status == 200
    card = body["results"][0]["scorecard"]
    item = next(i for s in card["sections"] for i in s["items"] if i["points"] < i["max_points"])
    assert server.post(f"/api/appeals/mine/calls/{calls[0]['call_id']}", {"reason": "seed", "entries": [
        {"item": item["id"]}]}, key="agent")[0] == 201
    yield server
    stop(process)


def schemathesis(server: Server, key: str, cwd: Path, *only: str) -> subprocess.CompletedProcess:
    cli = Path(sys.executable).parent / "schemathesis"
    return subprocess.run(
        [str(cli), "run", server.base + "/docs.json", "--checks", "all", "--max-examples", str(EXAMPLES),
         "--seed", "7", "--phases", "examples,coverage,fuzzing,stateful", "--suppress-health-check", "all",
         "-H", f"Authorization: Bearer {server.keys[key]}", *only],
        capture_output=True, text=True, cwd=cwd, timeout=1500)


@pytest.mark.parametrize(("key", "only"), [
    ("admin", ["--exclude-path-regex", "^/api/appeals/mine"]),  # every route but an agent's own
    ("agent", ["--include-path-regex", "^/api/appeals/mine"]),  # an agent's routes, with an agent's key
])
def test_schemathesis_finds_no_failure_with_every_check(server, tmp_path, key, only):
    done = schemathesis(server, key, tmp_path, *only)
    (tmp_path / "schemathesis.txt").write_text(done.stdout + done.stderr, encoding="utf-8")
    assert done.returncode == 0, done.stdout[-12000:] + done.stderr[-2000:]
    assert re.search(r"\b[1-9]\d* passed", done.stdout), done.stdout[-3000:]
    assert "Authentication failed" not in done.stdout, done.stdout[-3000:]
