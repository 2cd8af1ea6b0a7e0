"""Serve a bundle on a free loopback port (local-demo mode, no keys), load it at concurrency 1/8/32, stop it.

    python benchmarks/serve_load.py --bundle bundles/demo/current --data data/sample/test.jsonl \
        --baseline benchmarks/results/bench-latest.json --out benchmarks/results/serve-latest.json
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--baseline")
    parser.add_argument("--out", required=True)
    parser.add_argument("--requests", type=int, default=96)
    args = parser.parse_args()

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tmp = tempfile.mkdtemp(prefix="callqa-load-")
    server = subprocess.Popen(
        [sys.executable, "-m", "callqa.cli", "serve", "--bundle", args.bundle, "--port", str(port), "--no-auth",
         "--db", f"sqlite:///{tmp}/callqa.db"],
        stdout=open(f"{tmp}/server.log", "wb"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        for _ in range(240):
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2).status == 200:
                    break
            except OSError:
                time.sleep(0.5)
        else:
            sys.exit(f"server did not start; see {tmp}/server.log")
        cmd = [sys.executable, "-m", "callqa.cli", "bench-serve", "--url", f"http://127.0.0.1:{port}",
               "--data", args.data, "--requests", str(args.requests), "--out", args.out]
        if args.baseline:
            cmd += ["--baseline", args.baseline]
        sys.exit(subprocess.run(cmd).returncode)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
