"""The portal's server (`python -m portal.asgi_server`, daphne with the frames extension): frames
written through the extension reach the client whole and in order with the application's own
sends, also when they are more than the socket takes at once."""

from __future__ import annotations

import asyncio
import contextlib
import json

import pytest
import websockets

from portal.tests.frames_app import burst_texts
from portal.tests.servers import asgi_serving


@pytest.fixture
def port(tmp_path):
    with asgi_serving("portal.tests.frames_app:application", tmp_path / "server.log", {}) as serving:
        yield serving


def _exchange(port: int, actions: list, expect: int, *, read_after: float = 0.0) -> list[str]:
    """Sends the actions in one frame; waits `read_after` seconds before reading (the server's
    writes then pile up unread), then reads `expect` messages."""

    async def scenario() -> list[str]:
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws/", max_size=None) as client:
            await client.send(json.dumps(actions))
            await asyncio.sleep(read_after)
            return [await asyncio.wait_for(client.recv(), 10) for _ in range(expect)]

    return asyncio.run(scenario())


def test_written_frames_keep_their_order_with_the_applications_sends(port):
    actions = [["send", "1"], ["write", "2"], ["write", "3"], ["send", "4"], ["write", "5"]]

    assert _exchange(port, actions, 5) == ["1", "2", "3", "4", "5"]


def test_frames_of_every_length_encoding_arrive_whole(port):
    texts = ["é" * 10, "x" * 125, "y" * 126, "z" * 65_535, "w" * 65_536, "v" * 300_000]

    assert _exchange(port, [["write", text] for text in texts], len(texts)) == texts


def test_a_burst_larger_than_the_socket_takes_arrives_whole_and_in_order(port):
    texts = burst_texts(400)  # about 8 MB, unread for a second

    assert _exchange(port, [["burst", 400]], len(texts), read_after=1.0) == texts


def test_frames_written_after_a_close_are_dropped(port):
    async def scenario() -> tuple[list[str], int | None]:
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws/") as client:
            await client.send(json.dumps([["write", "before"], ["close", 4000], ["write", "after"]]))
            received = []
            with contextlib.suppress(websockets.ConnectionClosed):
                while True:
                    received.append(await asyncio.wait_for(client.recv(), 10))
            return received, client.close_code

    assert asyncio.run(scenario()) == (["before"], 4000)
