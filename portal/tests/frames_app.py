"""A small ASGI application for test_asgi_server: on a WebSocket it mixes frames written through
`tradeport.websocket.frames` with ordinary ASGI sends, as the client asks, so the test can see
the order and the bytes the client receives."""

from __future__ import annotations

import json

from portal.asgi_server import FRAMES_EXTENSION


async def application(scope: dict, receive, send) -> None:
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})
        return
    if scope["type"] != "websocket":
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    frames = (scope.get("extensions") or {}).get(FRAMES_EXTENSION)
    if frames is None:
        await send({"type": "websocket.send", "text": "no frames extension"})
        await send({"type": "websocket.close", "code": 1011})
        return
    while True:
        event = await receive()
        if event["type"] != "websocket.receive":
            return
        # [["send", text] | ["write", text] | ["burst", count] | ["close", code], ...]: done in
        # order, in one turn. A burst is `count` numbered texts of 20,000 characters, every
        # seventh sent, the others written.
        for action, value in json.loads(event["text"]):
            if action == "burst":
                for number, text in enumerate(burst_texts(value)):
                    if number % 7:
                        frames["write"](frames["prepare"](text), text)
                    else:
                        await send({"type": "websocket.send", "text": text})
            elif action == "send":
                await send({"type": "websocket.send", "text": value})
            elif action == "write":
                frames["write"](frames["prepare"](value), value)
            elif action == "close":
                await send({"type": "websocket.close", "code": value})


def burst_texts(count: int) -> list[str]:
    return [f"{number:05d}" + "p" * 20_000 for number in range(count)]
