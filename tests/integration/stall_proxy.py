"""A TCP proxy in front of PostgreSQL that can stall: it keeps accepting connections and holding
them open, but passes no byte either way (a hung server, a load balancer with nothing behind it).

    with StallProxy(upstream=("127.0.0.1", 5432)) as proxy:   # proxy.port: point DATABASE_URL here
        proxy.stall()    # from now on: accept, then silence (new and existing connections)
        proxy.resume()   # traffic flows again; connections held during the stall are closed

One asyncio loop on a thread of its own; usable from a test or a script (scripts/scenarios).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading


class StallProxy:
    def __init__(self, *, upstream: tuple[str, int], host: str = "127.0.0.1"):
        self.upstream = upstream
        self.host = host
        self.port = 0
        self.accepted = 0
        self._flowing: asyncio.Event | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="stall-proxy", daemon=True)
        self._server = None
        self._held: set[asyncio.StreamWriter] = set()

    def __enter__(self) -> StallProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    def __exit__(self, *exc) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def stall(self) -> None:
        self._loop.call_soon_threadsafe(self._flowing.clear)

    def resume(self) -> None:
        asyncio.run_coroutine_threadsafe(self._resume(), self._loop).result(timeout=10)

    async def _start(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server = await asyncio.start_server(self._client, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        self._server.close()
        for writer in list(self._held):
            writer.close()

    async def _resume(self) -> None:
        # A connection whose bytes were held mid-stream would be out of step: close those.
        for writer in list(self._held):
            writer.close()
        self._held.clear()
        self._flowing.set()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if not self._flowing.is_set():
            self._held.add(writer)  # accepted, and then nothing
            await self._closed(reader)
            self._held.discard(writer)
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        pipes = [
            asyncio.ensure_future(self._pipe(reader, up_writer, held=writer)),
            asyncio.ensure_future(self._pipe(up_reader, writer, held=writer)),
        ]
        await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        for pipe in pipes:
            pipe.cancel()
        for end in (writer, up_writer):
            end.close()
        self._held.discard(writer)

    async def _pipe(self, source: asyncio.StreamReader, target: asyncio.StreamWriter, *, held) -> None:
        while data := await source.read(65536):
            if not self._flowing.is_set():
                self._held.add(held)
                await self._flowing.wait()
                if held not in self._held and held.is_closing():
                    return
            target.write(data)
            await target.drain()

    @staticmethod
    async def _closed(reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(ConnectionError):
            while await reader.read(65536):
                pass
