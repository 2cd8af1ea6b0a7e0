"""Generate datasets/sample/calls.jsonl: synthetic but realistic Chinese call-center calls, seeded and deterministic.

    python datasets/make_sample.py            # rewrites datasets/sample/calls.jsonl
    python datasets/make_sample.py --check    # exits 1 if the committed file differs from what this script makes

The agent's wording follows the call's attitude and empathy levels and the ending follows its resolution, so a
model trained on the sample learns something real in minutes. Some calls are long (several topics, many turns),
some are scored by three reviewers (votes), some lack a head. Every call carries its call type (来电类型), derived from
what the customer first asks about. Phone numbers in the text are made up.

Labels carry the ambiguity of human QA, so no model can score them perfectly: an agent's phrases are not all of one
level (a polite greeting, a curt reply), a single reviewer's label is one level off the call's level about one time
in four, and calibration reviewers often split across neighbouring levels. 36 agents with about 10 calls each, so a
split by agent puts several agents in every part.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

OUT = Path(__file__).resolve().parent / "sample" / "calls.jsonl"
SEED = 20260301
N_CALLS = 360
AGENTS = [f"a-{i:02d}" for i in range(1, 37)]
CST = timezone(timedelta(hours=8))

# topic → (customer problem statements, agent's questions, solution steps, partial outcome, unresolved outcome)
TOPICS: dict[str, dict[str, list[str]]] = {
    "billing": {
        "problem": ["我这个月话费怎么扣了一百多，平时才五十几块", "账单上有一笔九块九的增值业务费，我从来没订过",
                    "我充了一百块钱，怎么余额还是负的", "上个月的话费发票一直没收到"],
        "ask": ["您方便告诉我一下机主姓名和身份证后四位吗", "请问您说的是哪个月的账单", "您还记得是哪天充值的吗"],
        "solve": ["我这边查到是开通了一个视频会员包，已经帮您退订了", "这笔费用是系统误扣，会在三个工作日内退回到您的账户",
                  "充值已经到账了，是之前欠费抵扣了一部分", "电子发票已经重新发送到您预留的邮箱了"],
        "partial": ["退订已经办好了，但退款需要提交申请，审核后才能退", "发票可以重开，但是抬头修改要您到营业厅办理"],
        "unresolved": ["这个扣费我这边没有权限处理，只能帮您登记", "系统显示扣费正常，我们没办法退"],
    },
    "network": {
        "problem": ["我家里的宽带这两天老是掉线", "手机信号特别差，在家里打电话都断断续续的",
                    "4G网速特别慢，刷个网页要半天", "光猫上的红灯一直在闪"],
        "ask": ["请问您的装机地址是哪里", "您重启过光猫和路由器了吗", "是所有地方都这样，还是只在家里"],
        "solve": ["您那边的光缆昨天施工挖断了，现在已经修复，您再试一下", "我远程帮您重置了端口，现在网络恢复正常了",
                  "已经给您派了维修单，师傅今天下午上门，刚才回单显示已经修好"],
        "partial": ["基站扩容要下个月才能完成，先给您申请了一个信号放大器", "已经派单了，师傅明天才能上门"],
        "unresolved": ["您那个小区不在我们覆盖范围内，这个我们也没办法", "系统查不到故障，您自己再看看吧"],
    },
    "plan_change": {
        "problem": ["我想把现在的套餐换成便宜一点的", "我想办一个流量多一点的套餐", "我的合约期还没到，能不能提前改套餐",
                    "家里三个人想办个亲情套餐"],
        "ask": ["您现在每个月大概用多少流量", "您是想下个月生效还是立即生效", "请问副卡的号码是多少"],
        "solve": ["已经帮您改成五十九元的套餐，下个月一号生效", "亲情套餐已经办好了，三张卡共享流量",
                  "给您换成了一百二十九元的大流量套餐，立即生效"],
        "partial": ["套餐可以改，但是合约期内的优惠要取消", "主卡已经改好了，副卡需要机主本人来营业厅办理"],
        "unresolved": ["合约期内不能改套餐，这是规定", "这个套餐已经下线了，办不了"],
    },
    "after_sales": {
        "problem": ["我买的手机屏幕有坏点，想退货", "耳机用了一个礼拜就没声音了", "我申请的退货一直没有人处理",
                    "收到的充电器是坏的"],
        "ask": ["请问您的订单号是多少", "商品签收几天了", "包装和配件都还在吗"],
        "solve": ["符合七天无理由退货，我已经帮您提交了退货申请，快递员明天上门取件", "给您安排换新，新机今天就发出",
                  "退款已经原路退回，一到三个工作日到账"],
        "partial": ["可以给您维修，但是换新需要检测报告", "退货申请提交了，但是赠品需要一起寄回才能全额退款"],
        "unresolved": ["已经超过七天了，不能退", "人为损坏不在保修范围内"],
    },
    "delivery": {
        "problem": ["我的快递显示签收了，但我根本没收到", "订单三天了还没发货", "快递员态度很差，东西直接扔在门口",
                    "物流信息好几天都没有更新了"],
        "ask": ["麻烦提供一下运单号", "请问收货地址是哪里", "您方便说一下下单时间吗"],
        "solve": ["已经联系快递网点，包裹在驿站，今天给您送上门", "仓库已经加急发货了，这是新的运单号",
                  "已经对快递员做了投诉处理，给您补偿了一张优惠券"],
        "partial": ["已经联系网点了，但是要等他们核实，明天给您回电", "可以催发货，但是具体时间我这边确定不了"],
        "unresolved": ["签收了就不归我们管了，您找快递公司吧", "物流的事情我们也没办法"],
    },
    "account": {
        "problem": ["我的账号登录不上了，一直提示密码错误", "我忘了服务密码，想重置一下", "账号被冻结了，说是有异常登录",
                    "手机号换了，账号绑定的还是旧号码"],
        "ask": ["为了您的账户安全，需要核实一下身份信息", "请问注册时用的是哪个手机号", "最近有没有在别的设备上登录过"],
        "solve": ["已经给您重置了密码，新密码通过短信发给您了", "身份核实通过，账号已经解冻",
                  "绑定手机已经帮您换成新号码了"],
        "partial": ["密码重置好了，但是解冻要等安全审核，二十四小时内完成", "需要您上传身份证照片，审核通过后才能换绑"],
        "unresolved": ["身份信息对不上，没办法帮您操作", "这个账号不是您本人实名的，我们不能处理"],
    },
    "website": {
        "problem": ["你们网站上付款页面一直打不开", "App更新以后闪退，根本用不了", "网上营业厅查不到我的订单",
                    "App里的优惠券领不了"],
        "ask": ["请问您用的是什么手机型号", "您试过清除缓存吗", "报错的时候有提示什么信息吗"],
        "solve": ["这是昨晚发布的版本的问题，现在已经修复了，您更新到最新版本就可以", "已经帮您在后台把订单同步过去了",
                  "优惠券已经手动发放到您的账户"],
        "partial": ["问题已经反馈给技术部门，预计下个版本修复，您先用网页版", "订单能查到了，但是优惠券还需要等活动部门确认"],
        "unresolved": ["技术问题我们客服处理不了", "您手机太旧了，不支持"],
    },
    "email": {
        "problem": ["我的企业邮箱收不到外部的邮件", "邮箱空间满了，发不出去邮件", "发出去的邮件总是被退回",
                    "邮箱在手机上设置不了"],
        "ask": ["请问您的邮箱地址是哪个", "退信提示的是什么内容", "您是用什么客户端收发的"],
        "solve": ["您的邮箱被误加入了黑名单，我已经移除了，现在可以正常收信", "已经帮您把空间扩容到十G",
                  "服务器地址设置错了，我发给您正确的配置，您按这个填就行"],
        "partial": ["扩容需要管理员在后台申请，我先帮您清理了部分旧邮件", "退信原因是对方服务器拒收，需要对方处理"],
        "unresolved": ["这个是您公司管理员的设置，我们改不了", "邮箱问题您自己查一下设置吧"],
    },
    "domain": {
        "problem": ["我的域名到期了，续费以后网站还是打不开", "想把域名转到你们这边来", "域名解析改了一天了还不生效",
                    "域名实名认证一直审核不通过"],
        "ask": ["请问是哪个域名", "您修改的是哪条解析记录", "认证时上传的是什么证件"],
        "solve": ["续费已经生效，我刷新了一下解析，现在网站可以访问了", "转入申请已经提交，转移码已发到您的邮箱",
                  "解析记录填错了，我帮您改好了，十分钟内生效"],
        "partial": ["实名材料需要重新上传，审核大约需要一到三天", "转入已经提交，但是需要原注册商确认"],
        "unresolved": ["域名已经过了赎回期，没办法找回了", "这个要找原来的注册商，我们管不了"],
    },
    "service_complaint": {
        "problem": ["我要投诉你们昨天那个客服，态度太恶劣了", "我打了三次电话都没人给我解决，太过分了",
                    "营业厅的工作人员强行给我办业务", "你们答应给我回电话，到现在都没打"],
        "ask": ["请问是哪天几点左右的来电", "您还记得工作人员的工号吗", "是在哪个营业厅办理的"],
        "solve": ["已经核实情况，给您登记了投诉，并补偿了二十元话费", "强制办理的业务已经全部取消，费用退还给您",
                  "主管会在今天下午五点前给您回电，我这边也会跟进"],
        "partial": ["投诉已经登记，处理结果三个工作日内回复您", "业务取消了，但是补偿需要上级审批"],
        "unresolved": ["这个我们核实不了", "投诉您可以打别的电话，我这边不受理"],
    },
    "other": {
        "problem": ["我想咨询一下你们营业厅周末几点开门", "我想问问国际漫游怎么开通", "家里老人的手机想开通来电提醒",
                    "我想了解一下积分怎么兑换"],
        "ask": ["您要去哪个国家", "请问是哪个城市的营业厅", "老人的号码是本人实名的吗"],
        "solve": ["国际漫游已经帮您开通，出国前重启一下手机就行", "积分可以在App里兑换话费，我已经把链接发给您",
                  "营业厅周末早上九点到晚上六点营业"],
        "partial": ["漫游开通了，但是流量包要您出国以后再订", "来电提醒开通了，但是需要机主短信确认"],
        "unresolved": ["这个我也不清楚", "这个不归我们管"],
    },
}

# attitude level → agent greeting, acknowledgement and closing: 标准服务用语 at 5, curt or rude at 1.
GREETING = {
    5: ["您好，很高兴为您服务，我是{agent}号客服，请问有什么可以帮您", "您好，欢迎致电客服中心，工号{agent}为您服务，请问有什么可以帮到您"],
    4: ["您好，请问有什么可以帮您", "您好，这里是客服中心，请讲"],
    3: ["喂，你好", "客服，请讲"],
    2: ["喂，什么事", "说吧，什么问题"],
    1: ["喂？说", "又什么事啊"],
}
ACK = {
    5: ["好的，请您稍等，我马上为您查询", "好的，感谢您的耐心，我这边帮您看一下"],
    4: ["好的，我帮您查一下", "好的，您稍等"],
    3: ["嗯，我看看", "等一下"],
    2: ["等着", "你先别说了，我查一下"],
    1: ["你急什么，等着", "说那么多干嘛，我查一下"],
}
CLOSING = {
    5: ["请问还有其他可以帮您的吗？感谢您的来电，祝您生活愉快，再见", "感谢您的耐心等待，稍后请对我的服务做出评价，祝您生活愉快"],
    4: ["还有其他问题吗？好的，再见", "感谢来电，再见"],
    3: ["就这样吧，再见", "没别的事我挂了"],
    2: ["行了，没事挂了", "就这样"],
    1: ["没事别老打电话", "我挂了啊"],
}
# empathy level → how the agent answers the customer's frustration.
EMPATHY = {
    5: ["非常理解您现在着急的心情，给您带来这么多不便，真的很抱歉", "换作是我也会很着急，您别担心，我一定尽力帮您处理好"],
    4: ["理解您的心情，给您带来不便很抱歉", "不好意思让您久等了"],
    3: ["嗯，知道了", "明白"],
    2: ["这个情况很多人都有", "这也不是什么大事"],
    1: ["这不是我们的问题，是你自己没弄清楚", "你着急也没用啊"],
}
FRUSTRATION = ["我都打了好几次电话了", "这事拖了快一个礼拜了，真的很着急", "我明天出差，今天必须弄好",
               "你们这服务怎么回事啊", "家里老人一直等着用呢"]
CUSTOMER_THANKS = {"resolved": ["好的，那太好了，谢谢你", "行，解决了就好，谢谢"],
                   "partly": ["那好吧，我再等等", "行吧，那你们尽快"],
                   "unresolved": ["那我到底该找谁啊？算了", "你们这什么服务，我要投诉"]}
DETAILS = ["我的号码是{phone}", "你们可以打我这个电话{phone}联系我", "之前登记的联系电话是{phone}"]
SMALLTALK = [("客户", "我再确认一下，刚才说的是几号生效"), ("客服", "是下个月一号"), ("客户", "那中间会不会再扣费"),
             ("客服", "不会的，这段时间按原来的标准计费"), ("客户", "短信通知会发到哪个号码"), ("客服", "会发到您来电的号码上"),
             ("客户", "好，我记一下"), ("客服", "不着急，您慢慢记")]


# 来电类型: what the customer called for, by the call's first topic; a call that raises a service complaint anywhere is
# a complaint. Derived, not drawn: the rest of the sample stays what the seed made it.
CALL_TYPE = {"billing": "query", "delivery": "query", "network": "consult", "website": "consult", "email": "consult",
             "domain": "consult", "plan_change": "handle", "after_sales": "handle", "account": "handle",
             "service_complaint": "complaint", "other": "other"}


def call_type(topics: list[str]) -> str:
    return "complaint" if "service_complaint" in topics else CALL_TYPE[topics[0]]


def _phone(rng: random.Random) -> str:
    return rng.choice(["138", "139", "150", "186", "177"]) + "".join(str(rng.randrange(10)) for _ in range(8))


def _near(rng: random.Random, level: int, spread: list[int]) -> int:
    """A level near ``level`` (1..5): how one phrase, or one reviewer, departs from the call's own level."""
    return min(5, max(1, level + rng.choice(spread)))


# One reviewer's reading of a call: one level off about one time in four (neighbouring-level disagreement).
REVIEWER = [-1, 0, 0, 0, 0, 0, 0, 1]
# An agent's phrases in one call: mostly at the call's level, sometimes a level better or worse.
PHRASE = [-1, 0, 0, 0, 0, 1]


def _votes(rng: random.Random, level: int) -> dict[str, int]:
    votes: dict[str, int] = {}
    for _ in range(3):
        v = _near(rng, level, REVIEWER)
        votes[str(v)] = votes.get(str(v), 0) + 1
    return dict(sorted(votes.items()))


def make_call(rng: random.Random, index: int) -> dict:
    agent = rng.choice(AGENTS)
    attitude = rng.choices([1, 2, 3, 4, 5], weights=[1, 2, 3, 4, 3])[0]
    empathy = min(5, max(1, attitude + rng.choice([-2, -1, 0, 0, 0, 1])))
    resolution = rng.choices(["unresolved", "partly", "resolved"], weights=[3, 3, 5])[0]
    long_call = index % 12 == 0
    n_topics = 3 if long_call else rng.choices([1, 2], weights=[4, 1])[0]
    topics = rng.sample(sorted(TOPICS), n_topics)
    if attitude <= 2 and "service_complaint" not in topics and rng.random() < 0.4:
        topics[-1] = "service_complaint"
    pick = rng.choice
    turns: list[tuple[str, str]] = [("agent", pick(GREETING[_near(rng, attitude, PHRASE)]).format(agent=agent[2:]))]
    for k, topic in enumerate(topics):
        t = TOPICS[topic]
        turns.append(("customer", ("还有一件事，" if k else "") + pick(t["problem"])))
        if rng.random() < 0.6 or long_call:
            turns.append(("customer", pick(FRUSTRATION)))
            turns.append(("agent", pick(EMPATHY[_near(rng, empathy, PHRASE)])))
        turns.append(("agent", pick(t["ask"])))
        turns.append(("customer", pick(["好的", "稍等我找一下", "嗯，是的", "对"]) +
                      ("，" + pick(DETAILS).format(phone=_phone(rng)) if rng.random() < 0.3 else "")))
        turns.append(("agent", pick(ACK[_near(rng, attitude, PHRASE)])))
        outcome = resolution if k == len(topics) - 1 else rng.choice(["resolved", "partly"])
        turns.append(("agent", pick(t[{"resolved": "solve", "partly": "partial", "unresolved": "unresolved"}[outcome]])))
        if long_call:
            turns.extend(("customer" if who == "客户" else "agent", text) for who, text in SMALLTALK)
            turns.append(("agent", pick(EMPATHY[_near(rng, empathy, PHRASE)])))
    turns.append(("customer", pick(CUSTOMER_THANKS[resolution])))
    turns.append(("agent", pick(CLOSING[_near(rng, attitude, PHRASE)])))

    started = datetime(2026, 1, 5, 8, 30, tzinfo=CST) + timedelta(days=rng.randrange(180), minutes=rng.randrange(600))
    clock, out_turns = 0.0, []
    for speaker, text in turns:
        duration = round(len(text) / 4.5 + rng.uniform(0.3, 1.2), 1)
        out_turns.append({"speaker": speaker, "text": text, "start": round(clock, 1), "end": round(clock + duration, 1)})
        clock += duration + rng.uniform(0.2, 2.0)

    meta: dict = {"source": "synthetic"}
    if rng.random() < 0.15:  # calibration session: three reviewers scored the call
        labels: dict = {"attitude": {"votes": _votes(rng, attitude)}, "empathy": {"votes": _votes(rng, empathy)}}
        meta["reviewers"] = 3
    else:
        labels = {"attitude": _near(rng, attitude, REVIEWER), "empathy": _near(rng, empathy, REVIEWER)}
    # Whether "partly" resolved a call is a judgement call too: about one label in eight names a neighbour.
    scale = ["unresolved", "partly", "resolved"]
    heard = scale.index(resolution) + (rng.choice([-1, 1]) if rng.random() < 0.125 else 0)
    labels.update(resolution=scale[min(2, max(0, heard))], topics=sorted(topics), call_type=call_type(topics))
    for head, p in (("empathy", 0.1), ("resolution", 0.05), ("topics", 0.05)):
        if rng.random() < p:
            del labels[head]
    return {"call_id": f"s-{index:04d}", "agent_id": agent, "started_at": started.isoformat(), "channel": "phone",
            "turns": out_turns, "labels": labels, "meta": meta}


def make_sample(n: int = N_CALLS, seed: int = SEED) -> list[dict]:
    rng = random.Random(seed)
    return [make_call(rng, i) for i in range(n)]


def render(calls: list[dict]) -> str:
    return "".join(json.dumps(c, ensure_ascii=False) + "\n" for c in calls)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="compare with the committed file instead of writing")
    args = parser.parse_args()
    text = render(make_sample())
    if args.check:
        same = OUT.exists() and OUT.read_text(encoding="utf-8") == text
        print(f"{OUT}: {'up to date' if same else 'DIFFERS from the generator'}")
        return 0 if same else 1
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {N_CALLS} calls to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
