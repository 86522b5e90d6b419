"""The ceiling: a bare aiohttp handler answering five bytes, on the same Python and event loop
as ``medianest serve``. Run as ``python -m bench.baseline PORT``."""

from __future__ import annotations

import sys

from aiohttp import web


async def hello(request: web.Request) -> web.Response:
    return web.Response(text="hello")


def main() -> None:
    app = web.Application()
    app.router.add_get("/", hello)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()
