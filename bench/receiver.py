"""A webhook receiver on loopback, in a process of its own: ``python -m bench.receiver``.

It prints its port, answers every POST with 204 (keep-alive) and ``GET /count`` with how
many POSTs it has had. Being its own process, its work is not the load generator's: the
query phase's latencies measured while webhooks arrive are the gateway's, not the
receiver's competing with the generator for one event loop.
"""

from __future__ import annotations

import asyncio


async def main() -> None:
    received = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal received
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                if length:
                    await reader.readexactly(length)
                if head.startswith(b"GET /count "):
                    body = str(received).encode()
                    writer.write(
                        b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(body) + body
                    )
                else:
                    received += 1
                    writer.write(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()  # until the bench stops it


if __name__ == "__main__":
    asyncio.run(main())
