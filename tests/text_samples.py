# ruff: noqa: E501  (paragraphs are one line each, as model output is)
"""Sample texts for the text-mark tests and benchmark: prose, Markdown and code-heavy.

Written for this project (not copied from anywhere), with the shapes real model
output has: paragraphs of varied length, CJK and Latin punctuation, numbers,
URLs, e-mail addresses, lists, headings, inline code and fenced code.
"""

from __future__ import annotations

CHINESE_PROSE = """\
城市的早晨总是从一杯热豆浆开始的。天还没完全亮，街角的早点铺已经支起了蒸笼，白色的水汽在路灯下慢慢升起，像一层薄薄的纱。赶早班的人们排着队，有人低头看手机，有人和老板寒暄几句，问今天的油条是不是比昨天更脆。

这家铺子开了将近二十年。老板姓陈，说话慢条斯理，手上的动作却一点也不慢：揉面、切条、下锅，一气呵成。他说，做早点最要紧的是守时，凌晨四点起床，五点半开门，风雨无阻。附近的老住户都知道，只要看到铺子亮灯，就知道新的一天真的开始了。

近几年，街道变化很大。旧楼拆了，新楼盖起来，地铁站修到了路口，来来往往的面孔也越来越年轻。有人担心这样的小铺子迟早会被连锁店取代，陈老板却不太在意。他觉得，只要味道还在，熟客就还会回来；新来的年轻人，尝过一次，也许就会变成新的熟客。

不过，变化也确实带来了压力。房租比五年前涨了将近一倍，原料的价格也在上涨，一碗豆浆从一块五涨到了三块，他还是觉得不好意思。为了省下成本，他把营业时间改成了早上五点半到十点半，中午以后就关门休息，把时间留给采购和准备第二天的面团。

他的女儿在外地读完大学，前年回到了这座城市。她帮父亲开通了线上点单，又在社交平台上拍了几段制作油条的短视频，没想到一下子吸引了不少人。周末的时候，常常有年轻人专程坐地铁过来，只为了尝一口视频里那根金黄的油条。陈老板嘴上说太折腾，心里其实很高兴。

说到这些年的辛苦，陈老板很少抱怨。他记得最难的是前几年，街道施工，铺子门口挖开了一条长长的沟，客人要绕一大圈才能走到店里，有一个月的营业额只有平时的三成。那段时间，他每天照样四点起床，照样把豆浆磨好、把面发好，卖不完的就送给工地上的工人。工人们后来成了常客，施工结束以后，还有人专门带着家人回来吃早饭。他说，做生意和做人一样，急不得，也懒不得，别人记住你，往往是因为你在最难的时候也没有把门关上。

有人问他，打算做到什么时候。他想了想，说还没认真考虑过，只要身体还行，就一直做下去吧。说完，他又转身去翻锅里的油条，油花噼啪作响，香味飘满了整条街。对这条街上的很多人来说，这样的声音和味道，就是家的一部分。

街道办的工作人员也注意到了这家小铺子。去年秋天，他们组织了一次老字号评选，请附近的居民投票，陈老板的早点铺排在第二名，仅次于一家开了四十多年的理发店。颁奖那天，他特意换了一件干净的衬衫，站在台上却半天说不出话来，最后只说了一句：谢谢大家，明天早上还是五点半开门。台下的人都笑了，掌声比刚才还要热烈。

女儿有时候会劝他，把铺子交给年轻人打理，自己多休息。陈老板嘴上答应，第二天照样天不亮就出门。他说自己闲不住，一天不揉面，手就发痒。其实大家都明白，他舍不得的不只是这门手艺，还有每天清晨和熟客们的那几句闲聊：谁家的孩子考上了大学，谁家的老人住院了，哪条路又要修了。这些零零碎碎的消息，在豆浆和油条的香气里传来传去，把一条普通的街道连成了一个真正的社区。

研究城市的学者也开始关注这样的小店。有人统计过，在老城区，一家营业超过十年的早点铺，平均每天要接待两三百位顾客，其中一半以上是住在一公里以内的居民。它们不只是卖早饭的地方，也是邻里之间相互照应的节点。学者们建议，在更新改造老街区的时候，应该给这些小店留出空间，而不是简单地用统一的商铺把它们替换掉。

傍晚时分，铺子早已关门，卷帘门上贴着一张手写的告示：明日照常营业，豆浆管够。路过的人看一眼，笑一笑，继续往前走。城市每天都在变，而有些东西，也许正是因为有人愿意守着，才没有那么快地消失。
"""

ENGLISH_PROSE = """\
The harbour town wakes up slowly in winter. By seven the fishing boats are already out, but the streets stay quiet until the bakery on the corner opens its shutters and the smell of bread drifts down towards the water. Most mornings the first customer is the ferry captain, who buys two rolls and a coffee and never waits for his change.

The bakery has been in the same family for three generations. The current owner, Marta, took it over from her father twelve years ago, after a short career as an accountant in the city. She says the numbers are the same in both jobs; only the hours are worse. Her day starts at four, when the first batch of dough comes out of the fridge, and ends long after the last loaf is sold.

Tourists arrive in the summer, and with them come the queues. In July the bakery sells almost twice as much as in January, which is why Marta hires two students every year and teaches them how to shape a loaf in under a minute. Some of them come back the following summer; one of them, she says proudly, now runs a bakery of her own in another town.

Winter is harder. Fewer people walk past, the ferry runs only twice a day, and the cost of flour and energy has risen faster than anyone expected. Marta has cut the opening hours and stopped baking the more elaborate cakes, but she refuses to raise the price of a plain loaf. "People need bread," she says. "They do not need a lecture about inflation with it."

There are plans to build a larger marina on the other side of the bay, with apartments, shops and a hotel. Some residents hope it will bring work and keep young people from leaving; others fear it will turn the town into a place that only comes alive for eight weeks a year. Marta has not made up her mind. She thinks a town is more than its buildings, and that what matters is whether people still meet each other on the street.

In the evening, when the shop is closed and the ovens are cooling, she sometimes sits on the bench outside and watches the boats come back. The captain waves from the deck, the gulls circle over the harbour, and for a moment the town looks exactly as it did when she was a child. Then the lights come on along the quay, and another day is over.
"""

MARKDOWN = """\
---
title: Deploying the service
tags: [ops, guide]
---

# Deploying the service

This guide explains how to run the labelling service in production. It assumes a Linux host with Python 3.11, a PostgreSQL database and a reverse proxy in front of the application. Read it once from start to finish before you begin; most problems people report come from skipping the section on keys.

## Before you start

You need three things: a database, a signing key and a list of API keys. The database can be any PostgreSQL version from 13 onwards. The signing key must be an Ed25519 or SM2 private key in PKCS#8 format, and the API keys file is a small JSON document described in the [settings reference](docs/settings.md#api-keys).

- Create a database user with the right to create tables in one schema.
- Generate the signing key with `openssl genpkey -algorithm ed25519 -out key.pem`, and keep it out of version control.
- Write the API keys file and check it with a JSON linter; a missing comma is the most common mistake.

## Running it

Start the service with the command below, and point the proxy at port 8000. Logs go to standard error, so the process manager can collect them.

```sh
export AIGC_DATABASE_URL=postgresql+psycopg://aigc:secret@db.internal/aigc
export AIGC_RECORD_KEY=/etc/aigc/key.pem
aigc-label serve --host 127.0.0.1 --port 8000 --workers 4
```

When the service starts, it migrates the database schema and prints the address it listens on. If it cannot reach the database, it exits with a clear message instead of retrying forever: fix the URL and start it again. Questions go to ops-team@example.com, and the status page lives at https://status.example.com/aigc.

## Keeping it healthy

Watch the `/metrics` endpoint for error rates and latency, and alert when the ledger write time goes above 200 ms for more than five minutes. Back up the database every night; the ledger must be kept for at least 180 days. Rotate the signing key once a year, and keep the old public key in the list of accepted keys so that labels issued before the rotation still verify.
"""

CODE_HEAVY = """\
# Reading a ledger entry

The client is small. It sends one request, checks the status and returns the record, which is all most integrations need.

```python
import httpx


def fetch_record(base: str, key: str, produce_id: str) -> dict:
    url = f"{base}/v1/records/{produce_id}"
    response = httpx.get(url, headers={"Authorization": f"Bearer {key}"}, timeout=10)
    response.raise_for_status()  # 404: not issued here; 403: not yours to read
    return response.json()["record"]


if __name__ == "__main__":
    print(fetch_record("http://127.0.0.1:8000", "dev-key", "01JD8Z5K3M7Q2R4T6V8W0XYZAB"))
```

Call `fetch_record(base, key, produce_id)` with the ProduceID a label carries. The function raises `httpx.HTTPStatusError` on any status above 399, so wrap it if you want to treat a missing record as `None`.

```python
def record_or_none(base: str, key: str, produce_id: str) -> dict | None:
    try:
        return fetch_record(base, key, produce_id)
    except httpx.HTTPStatusError as exc:
        if exc.response.status_code == 404:
            return None
        raise
```

    # an indented block is code too
    for pid in ids: print(record_or_none(BASE, KEY, pid))

That is the whole client. The same request from the shell is `curl -H "Authorization: Bearer $KEY" $BASE/v1/records/$PID`, and the answer is the same JSON.
"""

SAMPLES = {
    "chinese-prose": CHINESE_PROSE,
    "english-prose": ENGLISH_PROSE,
    "markdown": MARKDOWN,
    "code-heavy": CODE_HEAVY,
}
#: the ones the overhead target (<= 8%) is about
PROSE = ("chinese-prose", "english-prose")
