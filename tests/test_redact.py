import json

import pytest

from callqa.redact import find_pii, redact


@pytest.mark.parametrize(
    "text, expected",
    [
        ("我的号码是13812345678，麻烦回电", "我的号码是[手机号]，麻烦回电"),
        ("手机 138 1234 5678 或 +86 139-1234-5678", "手机 [手机号] 或 [手机号]"),
        ("家里电话0571-64726635，单位(010)87654321", "家里电话[座机号]，单位[座机号]"),
        ("家里电话057164726635", "家里电话[座机号]"),
        ("身份证号11010519491231002X已经上传", "身份证号[身份证号]已经上传"),
        ("退款到6222020511009268521，开户行工商银行", "退款到[银行卡号]，开户行工商银行"),
        ("卡号 6222 0205 1100 9268 521", "卡号 [银行卡号]"),
        ("Visa 4111111111111111 到期", "Visa [银行卡号] 到期"),
        ("发到 zhang.san@example.com 或 1550179050@qq.com", "发到 [邮箱] 或 [邮箱]"),
    ],
)
def test_redacts_personal_numbers(text, expected):
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "订单号 120721929010 还没发货",
        "订单编号：130319131684，金额128.50元",
        "订单号1780608850谢谢",
        "2014-01-31 00:21 的通话，2026年3月2日 09:15",
        "套餐每月59元，流量30GB，合约期24个月",
        "拨打全国服务热线4008123456或400-830-8300",
        "QQ客服800010000",
        "发票号码 12345678901234567890",  # 20 digits: not a card, not an ID
        "单号 110105194912310021 校验位不对",  # ID-shaped, wrong check digit
        "运单号 SF1234567890123",
        "版本 1.3.8 build 20260101",
    ],
)
def test_leaves_ordinary_digits_alone(text):
    assert find_pii(text) == [], [text[f.start : f.end] for f in find_pii(text)]


def test_redacts_the_real_numbers_in_stc3(shared_stc3):
    dialogues = json.loads(shared_stc3.read_text(encoding="utf-8"))
    texts = [u for d in dialogues for t in d["turns"] for u in t["utterances"]]
    by_kind: dict[str, int] = {}
    for text in texts:
        for f in find_pii(text):
            by_kind[f.kind] = by_kind.get(f.kind, 0) + 1
    assert by_kind.get("mobile", 0) >= 50 and by_kind.get("email", 0) >= 5
    known = "邮费退到6222020511009268521 何士庞开户"
    assert any(known in t for t in texts)
    assert "6222020511009268521" not in redact(known)
    for text in texts:  # no mobile number survives redaction
        import re

        assert not re.search(r"(?<!\d)1[3-9]\d{9}(?!\d)", redact(text)), text
