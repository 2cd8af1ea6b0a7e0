"""Serve a bundle on a free loopback port (local-demo mode, no keys), load it at concurrency 1/8/32, stop it.

    python benchmarks/serve_load.py --bundle bundles/demo/current --data data/sample/test.jsonl \
        --baseline benchmarks/results/bench-latest.json --out benchmarks/results/serve-latest.json
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from callqa.serving.process import start_serve, stop_tree


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--baseline")
    parser.add_argument("--out", required=True)
    parser.add_argument("--requests", type=int, default=96)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="callqa-load-"))
    server, port = start_serve(args.bundle, tmp / "server.log", "--no-auth", "--db", f"sqlite:///{tmp}/callqa.db")
    try:
        cmd = [sys.executable, "-m", "callqa.cli", "bench-serve", "--url", f"http://127.0.0.1:{port}",
               "--data", args.data, "--requests", str(args.requests), "--out", args.out]
        if args.baseline:
            cmd += ["--baseline", args.baseline]
        sys.exit(subprocess.run(cmd).returncode)
    finally:
        stop_tree(server)


if __name__ == "__main__":
    main()
