"""Export of a tiny trained model: ONNX parity, the gate, bundle hashes, the BentoML store, and the benchmark."""

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from typer.testing import CliRunner

from callqa.bundle import BundleError, load_bundle, read_bundle_info, resolve_bundle
from callqa.cli import app
from callqa.jsonl import load_calls
from callqa.scorer import OnnxScorer, make_session
from callqa.training.data import build_dataset
from callqa.training.evaluate import load_run
from callqa.training.export import (
    AUTO,
    ExportError,
    GateConfig,
    export_run,
    quantize,
    validation_calls,
    window_feeds,
)
from callqa.training.run import RunDir
from callqa.training.trainer import predict_rows

from conftest import SAMPLE


@pytest.fixture(scope="module")
def sample_head(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("calls") / "head.jsonl"
    path.write_text("\n".join(SAMPLE.read_text(encoding="utf-8").splitlines()[:8]) + "\n", encoding="utf-8")
    return path


def test_onnx_fp32_matches_pytorch_window_outputs(tiny_bundle):
    parity = json.loads((tiny_bundle / "parity.json").read_text())
    window = parity["pytorch_vs_onnx_fp32"]["max_abs_window_output"]
    assert set(window) == {"pooled", *(f"logits.{h}" for h in ("attitude", "empathy", "resolution", "topics", "call_type"))}
    assert max(window.values()) <= 1e-4
    assert parity["n_windows"] > parity["n_calls"] == 24  # some validation calls span several windows


def test_numpy_aggregation_over_onnx_equals_pytorch_for_a_long_call(tiny_run, tiny_bundle):
    info, schema, model, encoder = load_run(tiny_run)
    calls = load_calls(SAMPLE)
    long_call = max(calls, key=lambda c: sum(len(t.text) for t in c.turns))
    assert len(encoder.encode(long_call).windows) >= 4
    rows = build_dataset([long_call], encoder, schema).to_list()
    expected, _ = predict_rows(model, rows, schema, encoder.pad_id, 8, torch.device("cpu"))
    got = OnnxScorer.from_bundle(tiny_bundle, model_file="model.onnx").predict_arrays([long_call])
    for head in schema.heads:
        np.testing.assert_allclose(got[head.name], expected[head.name], atol=1e-5)


def test_bundle_json_round_trips_schema_render_and_thresholds(tiny_run, tiny_bundle):
    run = json.loads((tiny_run / "run.json").read_text(encoding="utf-8"))
    info = read_bundle_info(tiny_bundle)
    assert info.schema_.model_dump(mode="json") == run["schema"]
    assert info.render.model_dump(mode="json") == run["render"]
    assert info.thresholds == run["thresholds"] and len(info.thresholds["topics"]) == 11
    assert info.gate.passed and not info.gate.forced
    assert set(info.metrics["validation"]) == {"pytorch", "fp32", "int8"}
    assert info.files["model.int8.onnx"] and (tiny_bundle / "model.int8.onnx").stat().st_size < (
        tiny_bundle / "model.onnx").stat().st_size


def test_loader_refuses_a_bundle_whose_file_changed(tiny_bundle, tmp_path):
    copy = shutil.copytree(tiny_bundle, tmp_path / "copy")
    load_bundle(copy)  # intact: loads
    tok = copy / "tokenizer.json"
    tok.write_text(tok.read_text(encoding="utf-8").replace("[UNK]", "[UNX]", 1), encoding="utf-8")
    with pytest.raises(BundleError, match=r"tokenizer.json: sha256 .* does not match"):
        load_bundle(copy)
    (copy / "model.int8.onnx").unlink()
    with pytest.raises(BundleError, match="model.int8.onnx: missing"):
        load_bundle(copy)


def test_failed_gate_fails_the_export_and_the_loader_refuses_it(tiny_run, tmp_path, sample_head, caplog):
    strict = GateConfig(max_nmd_increase=-1.0)  # no int8 model can improve NMD by a whole point: always fails
    said = []
    with pytest.raises(ExportError, match="export gate failed"):
        export_run(tiny_run, tmp_path / "failed", version="failed", gate=strict, quantization="qint8-per-channel",
                   log=said.append)
    verdicts = [line for line in said if "qint8-per-channel" in line and "failed" in line]
    assert len(verdicts) == 1 and verdicts[0].startswith("qint8-per-channel failed the gate (attitude: int8 NMD")
    assert "serving int8 qint8-per-channel: failed: attitude: int8 NMD" in verdicts[0]
    # auto: no int8 method keeps quality, so the fp32 graph serves; one line says so, and onnxruntime's
    # pre-processing advice is not repeated per try.
    said.clear()
    fallback = export_run(tiny_run, tmp_path / "fp32", version="fp32", gate=strict, store=False, log=said.append)
    verdicts = [line for line in said if "failed the gate" in line]
    assert len(verdicts) == 1 and verdicts[0].startswith("qint8-per-channel failed the gate (attitude: int8 NMD")
    assert verdicts[0].endswith("), serving fp32 (model.onnx): passed")
    assert "qint8-per-channel-ffn-fp32 failed the gate (attitude: int8 NMD" in verdicts[0]
    assert "static-u8s8 failed the gate (attitude: int8 NMD" in verdicts[0]
    assert fallback.gate.passed and fallback.serve == "fp32" and fallback.model_file == "model.onnx"
    assert load_bundle(tmp_path / "fp32")[0].serve == "fp32"
    assert not [r for r in caplog.records if "pre-processing" in r.getMessage()]
    info = read_bundle_info(tmp_path / "failed")
    assert not info.gate.passed and not info.gate.forced and "attitude: int8 NMD" in info.gate.failures[0]
    with pytest.raises(BundleError, match="gate failed"):
        load_bundle(tmp_path / "failed")
    with pytest.raises(FileNotFoundError):
        resolve_bundle("failed")  # a failed export is not stored

    # The benchmark still measures it: comparing a failed bundle's speed and quality is how one chooses another.
    from callqa.training.bench import run_worker

    measured = run_worker("ort-int8", str(tmp_path / "failed" / "model.int8.onnx"), tmp_path / "failed", sample_head,
                          threads=1, repeats=1)
    assert measured["calls"] == 8 and measured["batch"]["8"]["calls_per_s"] > 0

    forced = export_run(tiny_run, tmp_path / "forced", version="forced", gate=strict, quantization="qint8",
                        force=True, log=lambda *_: None)
    assert forced.gate.forced and not forced.gate.passed
    info, _ = load_bundle(tmp_path / "forced")
    assert info.gate.forced


def test_bundle_is_in_the_bentoml_store_and_listed(tiny_bundle):
    import bentoml

    stored = bentoml.models.get("callqa-scorer:tiny")
    assert stored.info.metadata["gate_passed"] is True
    assert read_bundle_info(Path(stored.path)) == read_bundle_info(tiny_bundle)
    assert resolve_bundle("tiny") == Path(stored.path)
    result = CliRunner().invoke(app, ["bundles", "list"])
    assert result.exit_code == 0, result.output
    assert "callqa-scorer:tiny" in result.output and "passed" in result.output


def test_export_cli_reports_a_missing_run_clearly(tmp_path):
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(app, ["export", "--run", str(tmp_path / "empty"), "--out", str(tmp_path / "b")])
    assert result.exit_code == 1 and "not a finished run" in result.output


def test_bench_measures_every_engine_on_the_same_calls(tiny_bundle, tiny_data, tmp_path):
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(app, ["bench", "--bundle", str(tiny_bundle), "--data", str(tiny_data[1]),
                                      "--quantization", "quint8", "--out", str(out)])
    assert result.exit_code == 0, result.output
    bench = json.loads(out.read_text())
    engines = [e["engine"] for e in bench["engines"]]
    own = read_bundle_info(tiny_bundle).quantization  # auto's pick on this machine
    assert engines == ["pytorch-fp32", "ort-fp32", f"ort-int8 ({own})", "ort-int8 (quint8)"]
    for e in bench["engines"]:
        assert e["calls"] == 24 and set(e["batch"]) == {"1", "8", "32"} and e["peak_rss_mb"] > 0
        assert e["batch"]["1"]["p99_ms"] >= e["batch"]["1"]["p50_ms"] > 0
    fp32 = bench["engines"][1]["quality_delta_vs_fp32"]
    assert all(abs(v) < 1e-5 for d in fp32.values() for v in d.values())
    assert "| ort-fp32 | 2 |" in result.output
    # Against the machine: measured matmul peaks, each engine's useful GFLOP/s a fraction of its arithmetic's peak,
    # and what padding wasted (batch 1 pads one call's windows to its longest; batch 32 mixes calls).
    roof = bench["machine"]["roof"]
    assert roof["fp32_gflops"] > 1 and roof["int8_gops"] > 1
    for e in bench["engines"]:
        assert 0 < e["roof_fraction"] < 1.5 and e["gflops"] > 0
        assert 0 <= e["batch"]["1"]["padding_waste"] < 1 and 0 <= e["batch"]["32"]["padding_waste"] < 1
        assert e["batch"]["32"]["window_tokens_per_s"] > 0


def test_auto_serves_the_fastest_graph_that_passed_the_gate(tiny_bundle):
    parity = json.loads((tiny_bundle / "parity.json").read_text())
    info = read_bundle_info(tiny_bundle)
    tried = parity["quantizations_tried"]
    assert list(tried) == list(AUTO) and all(t["windows_per_s"] > 0 and not t["failures"] for t in tried.values())
    assert info.quantization == max(tried, key=lambda m: tried[m]["windows_per_s"])
    # fp32 serves where it ran faster than every int8 graph (a tiny encoder's matmuls are too small to gain).
    faster_fp32 = parity["fp32_windows_per_s"] >= tried[info.quantization]["windows_per_s"]
    assert info.serve == ("fp32" if faster_fp32 else "int8") == parity["serve"]
    assert not list(tiny_bundle.glob("tmp*")), "the other candidates are not left in the bundle"


@pytest.mark.parametrize("method, zero_point", [("static-u8s8", onnx.TensorProto.UINT8),
                                                ("static-s8s8", onnx.TensorProto.INT8)])
def test_static_quantization_calibrates_fixed_activation_scales(tiny_run, tiny_bundle, tmp_path, method, zero_point):
    _, _, model, encoder = load_run(tiny_run)
    calls = validation_calls(RunDir(tiny_run).info())
    windows = [w for e in encoder.encode_batch(calls) for w in e.windows]
    config = model.encoder.config
    with pytest.raises(ExportError, match="needs calibration windows"):
        quantize(tiny_bundle / "model.onnx", tmp_path / "none.onnx", method, config.num_attention_heads,
                 config.hidden_size)
    out = tmp_path / f"{method}.onnx"
    quantize(tiny_bundle / "model.onnx", out, method, config.num_attention_heads, config.hidden_size,
             window_feeds(windows, encoder.pad_id))
    graph = onnx.load(str(out)).graph
    ops = [n.op_type for n in graph.node]
    # Static: activations quantize with stored scales (QuantizeLinear), never measured per batch at run time.
    assert "DynamicQuantizeLinear" not in ops and ops.count("QuantizeLinear") >= config.num_hidden_layers * 4
    constants = {i.name: i for i in graph.initializer}
    activation_zero_points = [constants[n.input[2]] for n in graph.node if n.op_type == "QuantizeLinear"
                              and n.input[0] not in constants]
    assert activation_zero_points and {z.data_type for z in activation_zero_points} == {zero_point}
    # Same outputs as fp32 within int8's error on the calibration windows.
    feeds = window_feeds(windows, encoder.pad_id)[0]
    fp32 = make_session(tiny_bundle / "model.onnx").run(None, feeds)[0]
    int8 = make_session(out).run(None, feeds)[0]
    assert np.abs(int8 - fp32).max() < 0.1 * np.abs(fp32).max()


def test_exporting_a_version_the_store_holds_fails_at_once_and_says_what_to_do(tiny_run, tiny_bundle, tmp_path):
    result = CliRunner().invoke(app, ["export", "--run", str(tiny_run), "--out", str(tmp_path / "again"),
                                      "--version", "tiny"])
    assert result.exit_code == 1
    assert "callqa-scorer:tiny is already in the BentoML model store" in result.output
    assert "bentoml models delete callqa-scorer:tiny" in result.output
    assert not (tmp_path / "again").exists()  # refused before any work
