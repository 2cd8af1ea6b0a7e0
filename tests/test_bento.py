"""`callqa bundles bento` (`make bento`): a Bento of the service and a bundle that BentoML serves as built."""

import json
import os
import subprocess
import sys
import urllib.request
import zipfile
from pathlib import Path

import yaml
from typer.testing import CliRunner

from callqa.calls import Call
from callqa.cli import app
from callqa.jsonl import load_calls
from callqa.pipeline import ScoringPipeline
from callqa.scorer import OnnxScorer
from callqa.serving.bento import pinned
from callqa.serving.process import free_port, stop_tree, wait_ready
from callqa.session import scorecard_for

from conftest import SAMPLE

SERVING_ONLY = ("torch", "transformers", "datasets", "onnx", "safetensors")


def test_a_bento_holds_the_bundle_and_pinned_serving_packages_and_serves_what_the_pipeline_scores(tiny_bundle, tmp_path):
    result = CliRunner().invoke(app, ["bundles", "bento", "--bundle", str(tiny_bundle), "--work", str(tmp_path / "ctx")])
    assert result.exit_code == 0, result.output
    tag = result.output.split("built ", 1)[1].split(";")[0]
    folder = Path(os.environ["BENTOML_HOME"]) / "bentos" / tag.replace(":", "/")
    bento = yaml.safe_load((folder / "bento.yaml").read_text(encoding="utf-8"))
    assert [m["tag"] for m in bento["models"]] == ["callqa-scorer:tiny"]
    assert {"name": "CALLQA_BUNDLE", "value": "callqa-scorer:tiny", "stage": "all"} in bento["envs"]

    # Every serving package pinned at the version this environment runs; nothing of training goes in.
    requirements = (folder / "env" / "python" / "requirements.txt").read_text(encoding="utf-8").split()
    assert set(pinned()) <= set(requirements)
    wheel = next((folder / "env" / "python" / "wheels").glob("callqa-*.whl"))
    with zipfile.ZipFile(wheel) as whl:
        names = whl.namelist()
        metadata = whl.read(next(n for n in names if n.endswith("METADATA"))).decode()
    needed = [line.split(":", 1)[1].strip() for line in metadata.splitlines()
              if line.startswith("Requires-Dist:") and "extra ==" not in line]
    assert needed and not [r for r in needed + requirements if r.split("=")[0].split(">")[0] in SERVING_ONLY]
    # The wheel carries what the service reads from disk: schemas, scorecards, serving config, review UI.
    for inside in ("callqa/configs/schemas/callcenter.yaml", "callqa/configs/scorecards/default.yaml",
                   "callqa/configs/serving/default.yaml", "callqa/serving/ui/index.html"):
        assert inside in names

    # BentoML serves the built Bento (from its own folder, by tag) and it scores as the pipeline does.
    port = free_port()
    log = tmp_path / "bento.log"
    env = dict(os.environ, CALLQA_DB=f"sqlite:///{tmp_path / 'bento.db'}", CALLQA_AUTH="off",
               BENTOML_DO_NOT_TRACK="True")
    env.pop("CALLQA_BUNDLE", None)  # the Bento names its bundle
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "bentoml", "serve", tag, "--host", "127.0.0.1", "--port",
                                    str(port)], stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp_path,
                                   start_new_session=True)
    try:
        wait_ready(process, f"http://127.0.0.1:{port}", log)
        call = load_calls(SAMPLE)[0]
        body = json.dumps({"calls": [call.model_dump(mode="json", exclude={"labels"})]}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/score", data=body,
                                         headers={"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            served = json.loads(response.read())
    finally:
        stop_tree(process)
    scorer = OnnxScorer.from_bundle(tiny_bundle)
    expected = ScoringPipeline(scorer.info, scorecard_for("default", tiny_bundle)).score(
        scorer, [Call.model_validate(call.model_dump(exclude={"labels"}))])[0]
    assert served["model"] == "callqa-scorer:tiny"
    for head in ("attitude", "empathy", "resolution"):
        assert abs(served["results"][0]["scores"][head]["expected"] - expected.scores[head].expected) < 1e-4
    assert served["results"][0]["scorecard"]["total"] == expected.scorecard.total
