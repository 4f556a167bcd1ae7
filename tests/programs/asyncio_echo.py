#!/usr/bin/env python3
"""asyncio (epoll) echo server and a concurrent client driver.

    asyncio_echo.py server HOST PORT            serve until killed (PORT 0: ephemeral);
                                                prints "asyncio_echo: listening HOST PORT"
    asyncio_echo.py client HOST PORT [--conns N] [--max-bytes B] [--seed S]
    asyncio_echo.py selftest [--conns N] ...    server and client in one process, 127.0.0.1

The client opens N connections (default 200) and holds them all open at once (an
asyncio.Barrier: nobody sends before everyone is connected), then each sends a random amount
(1..B bytes, default 65536) of random data, half-closes, reads until EOF and checks the echo
byte for byte. It prints one summary line and exits 0 only if every connection was correct.

Both sides run on an explicit selectors.EpollSelector event loop, so this exercises epoll.
"""
import argparse
import asyncio
import random
import selectors
import sys

CHUNK = 65536


async def handle_echo(reader, writer):
    try:
        while True:
            data = await reader.read(CHUNK)
            if not data:
                break
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def start_server(host, port):
    # Backlog 512: 200 simultaneous connects must not overflow the accept queue.
    return await asyncio.start_server(handle_echo, host, port, backlog=512)


async def run_server(host, port):
    server = await start_server(host, port)
    bound = server.sockets[0].getsockname()
    print(f"asyncio_echo: listening {host} {bound[1]}", flush=True)
    async with server:
        await server.serve_forever()


async def one_client(host, port, payload, barrier, timeout):
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    try:
        await asyncio.wait_for(barrier.wait(), timeout)
        writer.write(payload)
        await writer.drain()
        writer.write_eof()
        received = bytearray()
        while True:
            chunk = await asyncio.wait_for(reader.read(CHUNK), timeout)
            if not chunk:
                break
            received += chunk
        return bytes(received) == payload, len(received)
    finally:
        writer.close()


async def run_client(host, port, conns, max_bytes, seed, timeout=30.0):
    rng = random.Random(seed)
    payloads = [rng.randbytes(rng.randint(1, max_bytes)) for _ in range(conns)]
    barrier = asyncio.Barrier(conns)
    results = await asyncio.gather(
        *(one_client(host, port, p, barrier, timeout) for p in payloads),
        return_exceptions=True,
    )
    ok = sum(1 for r in results if not isinstance(r, BaseException) and r[0])
    echoed = sum(r[1] for r in results if not isinstance(r, BaseException))
    errors = sorted({type(r).__name__ for r in results if isinstance(r, BaseException)})
    loop = asyncio.get_running_loop()
    selector = type(loop._selector).__name__  # which readiness API the loop really uses
    line = (f"asyncio_echo client: {ok}/{conns} connections ok, {echoed} bytes echoed, "
            f"{conns} concurrent, selector {selector}")
    if errors:
        line += f", errors: {' '.join(errors)}"
    print(line, flush=True)
    return ok == conns


async def run_selftest(conns, max_bytes, seed):
    server = await start_server("127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        return await run_client("127.0.0.1", port, conns, max_bytes, seed)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=["server", "client", "selftest"])
    ap.add_argument("host", nargs="?", default="127.0.0.1")
    ap.add_argument("port", nargs="?", type=int, default=0)
    ap.add_argument("--conns", type=int, default=200)
    ap.add_argument("--max-bytes", type=int, default=65536)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    loop = asyncio.SelectorEventLoop(selectors.EpollSelector())
    asyncio.set_event_loop(loop)
    try:
        if args.mode == "server":
            loop.run_until_complete(run_server(args.host, args.port))
            return 0
        if args.mode == "client":
            if args.port == 0:
                ap.error("client needs a PORT")
            ok = loop.run_until_complete(
                run_client(args.host, args.port, args.conns, args.max_bytes, args.seed))
        else:
            ok = loop.run_until_complete(run_selftest(args.conns, args.max_bytes, args.seed))
        return 0 if ok else 1
    except KeyboardInterrupt:
        return 0
    finally:
        loop.close()


if __name__ == "__main__":
    sys.exit(main())
