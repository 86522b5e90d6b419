"""Many websocket subscribers in one process, for the fan-out scenario.

``python -m bench.wsclients URL COOKIE COUNT TOPIC`` opens COUNT sockets to ``URL`` (``ws://…/ws``)
with the session ``COOKIE``, subscribes each to ``TOPIC`` and prints ``READY n`` once ``n`` are
subscribed. It then waits for one event on every socket (or for a timeout) and prints one JSON
line: how many received it, and the wall-clock times of the first and the last arrival.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time

import aiohttp

# Sockets opened at once: the server's listen backlog is finite.
CONNECTING = 200
WAIT = 30.0


async def _open(
    session: aiohttp.ClientSession, url: str, topic: str, gate: asyncio.Semaphore
) -> aiohttp.ClientWebSocketResponse | None:
    async with gate:
        try:
            ws = await session.ws_connect(url, heartbeat=None, autoping=True)
            await ws.send_str(json.dumps({"action": "subscribe", "topics": [topic]}))
            reply = await ws.receive_json(timeout=60)
        except (aiohttp.ClientError, TimeoutError, OSError):
            return None
        if reply.get("type") != "subscribed":
            await ws.close()
            return None
        return ws


async def _first_event(ws: aiohttp.ClientWebSocketResponse) -> float | None:
    try:
        msg = await ws.receive(timeout=WAIT)
    except TimeoutError:
        return None
    return time.time() if msg.type is aiohttp.WSMsgType.TEXT else None


async def run(url: str, cookie: str, count: int, topic: str) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    async with aiohttp.ClientSession(
        connector=connector, headers={"Cookie": cookie}, timeout=aiohttp.ClientTimeout(total=None)
    ) as session:
        gate = asyncio.Semaphore(CONNECTING)
        opened = await asyncio.gather(*(_open(session, url, topic, gate) for _ in range(count)))
        sockets = [ws for ws in opened if ws is not None]
        print(f"READY {len(sockets)}", flush=True)
        arrivals = [t for t in await asyncio.gather(*(_first_event(ws) for ws in sockets)) if t]
        print(
            json.dumps(
                {
                    "subscribed": len(sockets),
                    "received": len(arrivals),
                    "first": min(arrivals, default=None),
                    "last": max(arrivals, default=None),
                }
            ),
            flush=True,
        )
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)


def main() -> None:
    url, cookie, count, topic = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    asyncio.run(run(url, cookie, count, topic))


if __name__ == "__main__":
    main()
