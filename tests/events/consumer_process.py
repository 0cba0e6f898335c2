"""A durable consumer in a process of its own, for the kill -9 test.

Usage: python consumer_process.py URL PREFIX NAME. Each message handled is appended to
the list ``{PREFIX:test}:seen`` and acknowledged (the acks go out with the next read);
after each read the consumer's ack count is written to the hash ``{PREFIX:test}:acked``.
"""

from __future__ import annotations

import sys
import time

from redkit import Redkit


def main() -> None:
    url, prefix, name = sys.argv[1:4]
    rk = Redkit(url, prefix=prefix)
    consumer = rk.events.topic("jobs", durable=True).consumer(
        "g", name, count=10, claim_idle=1.0, dead_after=50
    )
    test = rk.keys.group("test")
    seen, acked = test.key("seen"), test.key("acked")
    print("ready", flush=True)
    while True:
        messages = consumer.read(timeout=1.0)
        rk.client.hset(acked, name, consumer.acked)
        for message in messages:
            time.sleep(0.004)  # the work
            rk.client.rpush(seen, message.data)
            message.ack()


if __name__ == "__main__":
    main()
