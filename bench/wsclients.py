"""Many websocket subscribers in one process, for the fan-out scenario.

``python -m bench.wsclients URL COOKIE COUNT TOPIC [EVENT KEY VALUE]`` opens COUNT sockets to
``URL`` (``ws://…/ws``) with the session ``COOKIE``, subscribes each to ``TOPIC`` and prints
``READY n`` once ``n`` are subscribed. It then waits on every socket (or until a timeout) for
one event: the first one, or with EVENT, KEY and VALUE the first ``EVENT`` whose data has
``KEY`` equal to ``VALUE`` (other events on the topic are read and skipped), and prints one JSON
line: how many received it, and the wall-clock times of the first and the last arrival.

The benchmark runs several of these processes: one Python process reading 10,000 sockets is
slower than the server writing to them, and would measure itself.
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

Match = tuple[str, str, str] | None


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


def _wanted(text: str, match: Match) -> bool:
    if match is None:
        return True
    event, key, value = match
    message = json.loads(text)
    return bool(
        message.get("event") == event and str((message.get("data") or {}).get(key)) == value
    )


async def _first_event(ws: aiohttp.ClientWebSocketResponse, match: Match) -> float | None:
    deadline = time.monotonic() + WAIT
    while True:
        try:
            msg = await ws.receive(timeout=max(deadline - time.monotonic(), 0.001))
        except TimeoutError:
            return None
        if msg.type is not aiohttp.WSMsgType.TEXT:
            return None
        arrived = time.time()
        if _wanted(msg.data, match):
            return arrived


async def run(url: str, cookie: str, count: int, topic: str, match: Match) -> None:
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
        found = await asyncio.gather(*(_first_event(ws, match) for ws in sockets))
        arrivals = [t for t in found if t]
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
    match: Match = (sys.argv[5], sys.argv[6], sys.argv[7]) if len(sys.argv) > 7 else None
    asyncio.run(run(url, cookie, count, topic, match))


if __name__ == "__main__":
    main()
