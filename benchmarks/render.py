"""What rendering a reply costs each channel, with the REST channel as the baseline in the same run.

    .venv-rasa/bin/python benchmarks/render.py [--rounds 2000] [--json PATH]

Runs in the Rasa environment (the channels' output classes are Rasa's subclasses). Every channel gets the
same bot messages, one at a time, through the code path it serves them with, up to the network call, which
is replaced by serialising what would be sent:

- REST (baseline): Rasa's ``CollectingOutputChannel.send_response`` and the JSON the webhook answers;
- web: ``parse_reply`` and ``web_markdown`` (what the chat page shows);
- Slack: ``SlackReplies.send_response`` up to ``chat.postMessage`` (Block Kit, JSON);
- Teams: ``TeamsReplies.send_response`` up to the Bot Connector POST (the activity, JSON);
- SMS: ``SmsReplies.send_response`` up to Twilio's ``messages.create`` (one call per segment);
- voice: ``parse_reply`` and the TwiML answer (``VoiceChannel.say_and_listen``, as a string).

The messages are the bot's kinds: a greeting, an extractive knowledge answer with its source, an LLM answer
with two sources, an order status, the two-stage fallback with four buttons, a handoff, and a long answer
(800 characters). Rounds of all kinds alternate between channels (REST, web, Slack, ..., REST, ...), so a
drift of the machine falls on all alike; the first rounds warm up and are not counted. Prints per channel
the p50, p95 and mean microseconds per reply and what it adds to REST's p50 and mean.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

BENCHMARKS = Path(__file__).resolve().parent
sys.path[:] = [str(BENCHMARKS.parent)] + [p for p in sys.path if Path(p or ".").resolve() != BENCHMARKS]

from rasa.core.channels.channel import CollectingOutputChannel  # noqa: E402

from app.analytics.stats import percentile  # noqa: E402
from app.channels.rendering import parse_reply, web_markdown  # noqa: E402
from app.channels.slack import SlackReplies  # noqa: E402
from app.channels.sms import SmsReplies  # noqa: E402
from app.channels.teams import AccessToken, TeamsReplies  # noqa: E402
from app.channels.voice import VoiceChannel  # noqa: E402

LINK = "https://help.northwind.example/search?q={title}"
FALLBACK_BUTTONS = [
    {"title": "Track an order", "payload": "/track_order"},
    {"title": "Ask about delivery", "payload": "/ask_delivery"},
    {"title": "Talk to a person", "payload": "/human_handoff"},
    {"title": "Something else", "payload": "/out_of_scope"},
]
MESSAGES: dict[str, dict[str, Any]] = {
    "greeting": {"text": "Hi! I'm the Northwind Goods assistant. How can I help?"},
    "extractive": {
        "text": "Standard delivery to Germany takes **2-4 business days**; express delivery arrives the next "
        "business day when you order before 14:00 CET.\n\nSource: Shipping & delivery › Delivery times"
    },
    "llm": {
        "text": "You can return unused items within 30 days [1]. Refunds reach your card in 5-7 days [2].\n\n"
        "Sources: [1] Returns › Return window; [2] Refunds › How long a refund takes"
    },
    "order": {
        "text": "Your order ORD-10042 has shipped with DHL (tracking number JD014612345678). Estimated "
        "delivery: Sunday 20 December 2026."
    },
    "fallback": {"text": "Sorry, I'm not sure I understood. Did you mean:", "buttons": FALLBACK_BUTTONS},
    "handoff": {
        "text": "I've opened ticket #42 for you. A member of our support team will pick up this conversation "
        "shortly."
    },
    "long": {
        "text": ("Our warranty covers manufacturing defects for two years from delivery. " * 12).strip()
    },
}


class Slack(SlackReplies):
    async def _post_message(self, channel: str, **kwargs: Any) -> None:
        self.sent = json.dumps({"channel": channel, "thread_ts": self.thread_id, **kwargs})


class Teams(TeamsReplies):
    async def send(self, message_data: dict[str, Any]) -> None:
        self.sent = json.dumps(message_data)


class _Messages:
    async def create_async(self, **fields: str) -> None:
        self.sent = dict(fields)


class Sms(SmsReplies):
    @property
    def messages(self) -> _Messages:  # Twilio's client property: here no HTTP
        return self._stub

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._stub = _Messages()


def renderers() -> dict[str, Callable[[dict[str, Any]], Awaitable[Any]]]:
    """Channel -> an async function rendering one Rasa message as that channel serves it."""
    activity = {
        "id": "1485983408511",
        "serviceUrl": "https://smba.trafficmanager.net/amer/",
        "from": {"id": "29:1XJKJ", "aadObjectId": "d2f8d8a1-6a67-4f4f-8b0a-2a3b0f6e4c11"},
        "recipient": {"id": "28:c9e8c047", "name": "Northwind Assistant"},
        "conversation": {"id": "a:17I0kl8EkpE1O9PH5TWrzrLqwnN"},
    }
    slack = Slack("xoxb-bench", "D024BE91L", "1355517523.000005", "https://slack.com/api/", LINK)
    teams = Teams(AccessToken("app", "password", "https://login.example/token"), activity, LINK)
    sms = Sms("ACbench", "token", "+15550100001", "+15557654321", "https://api.twilio.com", LINK)
    voice = VoiceChannel(
        {
            "account_sid": "ACbench",
            "auth_token": "token",
            "public_url": "https://bot.example.com",
            "numbers": {"+15550100002": "acme"},
            "transfer_number": "+15550100999",
        }
    )

    async def rest(message: dict[str, Any]) -> str:
        collector = CollectingOutputChannel()
        await collector.send_response("acme:alice", dict(message))
        return json.dumps(collector.messages)

    async def web(message: dict[str, Any]) -> str:
        return web_markdown(parse_reply(message, LINK))

    async def voice_twiml(message: dict[str, Any]) -> str:
        return str(voice.say_and_listen([parse_reply(message)], reprompts=0))

    def through(channel: Any) -> Callable[[dict[str, Any]], Awaitable[None]]:
        async def render(message: dict[str, Any]) -> None:
            await channel.send_response("acme:alice", dict(message))

        return render

    return {
        "REST (baseline)": rest,
        "web": web,
        "Slack": through(slack),
        "Teams": through(teams),
        "SMS": through(sms),
        "voice": voice_twiml,
    }


async def measure(rounds: int, warmup: int) -> dict[str, list[float]]:
    """Microseconds per reply, per channel, over ``rounds`` rounds of every message kind."""
    render = renderers()
    samples: dict[str, list[float]] = {name: [] for name in render}
    for number in range(warmup + rounds):
        for name, function in render.items():
            for message in MESSAGES.values():
                started = time.perf_counter_ns()
                await function(message)
                elapsed = (time.perf_counter_ns() - started) / 1000
                if number >= warmup:
                    samples[name].append(elapsed)
    return samples


def summary(samples: dict[str, list[float]]) -> list[dict[str, Any]]:
    base = samples["REST (baseline)"]
    base_p50, base_mean = percentile(base, 50), sum(base) / len(base)
    rows = []
    for name, values in samples.items():
        p50, mean = percentile(values, 50), sum(values) / len(values)
        rows.append(
            {
                "channel": name,
                "replies": len(values),
                "p50_us": round(p50, 1),
                "p95_us": round(percentile(values, 95), 1),
                "mean_us": round(mean, 1),
                "added_p50_us": round(p50 - base_p50, 1),
                "added_mean_us": round(mean - base_mean, 1),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks/render.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2000, help="rounds of every message kind per channel")
    parser.add_argument("--warmup", type=int, default=50, help="rounds first, not counted")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.warmup < 0:
        print("error: --rounds must be at least 1 and --warmup at least 0", file=sys.stderr)
        return 2
    rows = summary(asyncio.run(measure(args.rounds, args.warmup)))
    print(
        f"{'channel':<16} {'replies':>8} {'p50 us':>8} {'p95 us':>8} {'mean us':>8} {'+p50 us':>8} {'+mean us':>9}"
    )
    for row in rows:
        print(
            f"{row['channel']:<16} {row['replies']:>8} {row['p50_us']:>8} {row['p95_us']:>8} {row['mean_us']:>8} "
            f"{row['added_p50_us']:>8} {row['added_mean_us']:>9}"
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),  # noqa: UP017
                    "rounds": args.rounds,
                    "messages": list(MESSAGES),
                    "channels": rows,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
