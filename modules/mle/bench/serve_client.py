"""The load client of ``bench_serve.py``, run in its own process: ``python serve_client.py SPEC_FILE``.

Reads a JSON spec (port, path, headers, and either the single-record bodies, concurrency, duration and
request bound of one load level, or the body and repeats of the batch measurement), measures with raw
HTTP/1.1 keep-alive connections on asyncio (uvloop when installed) to 127.0.0.1 only, and prints the JSON
result. Every loop is bounded by the spec's duration and request count.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = None
    chunked = close = False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value.strip())
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
        elif name == b"connection" and b"close" in value.lower():
            close = True
    if length is not None:
        return status, await reader.readexactly(length), close
    if not chunked:
        raise RuntimeError("response without content-length or chunked encoding")
    parts: list[bytes] = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
        if size == 0:
            await reader.readuntil(b"\r\n")
            return status, b"".join(parts), close
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


def _request(path: str, port: int, body: bytes, headers: dict[str, str]) -> bytes:
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{extra}\r\n"
    )
    return head.encode() + body


async def _load(
    port: int, requests: list[bytes], concurrency: int, duration: float, max_requests: int
) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    budget = max_requests
    deadline = time.perf_counter() + duration

    async def stream(offset: int) -> None:
        nonlocal budget, errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        i = offset
        try:
            while budget > 0 and time.perf_counter() < deadline:
                budget -= 1
                request = requests[i % len(requests)]
                i += concurrency
                started = time.perf_counter()
                writer.write(request)
                status, _, close = await _read_response(reader)
                latencies.append(time.perf_counter() - started)
                if status != 200:
                    errors += 1
                if close:
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(stream(k) for k in range(concurrency)))
    elapsed = time.perf_counter() - started
    ordered = np.sort(np.array(latencies))
    return {
        "requests": len(latencies),
        "errors": errors,
        "seconds": elapsed,
        "throughput": len(latencies) / elapsed,
        "p50_ms": float(np.percentile(ordered, 50) * 1000),
        "p99_ms": float(np.percentile(ordered, 99) * 1000),
    }


async def _batch(port: int, request: bytes, repeats: int) -> dict[str, Any]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    times = []
    body = b""
    try:
        for i in range(repeats + 1):
            started = time.perf_counter()
            writer.write(request)
            status, body, _ = await _read_response(reader)
            if status != 200:
                raise RuntimeError(f"batch request failed with {status}: {body[:300]!r}")
            if i:  # the first call warms up
                times.append(time.perf_counter() - started)
    finally:
        writer.close()
    return {"median_ms": statistics.median(times) * 1000, "all_ms": [t * 1000 for t in times], "body": body.decode()}


def client_main(argv: list[str]) -> None:
    """``serve_client.py SPEC_FILE``: run one measurement, print its JSON result."""
    spec = orjson.loads(Path(argv[0]).read_bytes())
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    port, path, headers = spec["port"], spec["path"], spec.get("headers", {})
    if spec["mode"] == "batch":
        request = _request(path, port, spec["body"].encode(), headers)
        result = asyncio.run(_batch(port, request, spec["repeats"]))
    else:
        requests = [_request(path, port, body.encode(), headers) for body in spec["bodies"]]
        if spec.get("warmup"):
            asyncio.run(_load(port, requests, 8, 30.0, spec["warmup"]))
        result = asyncio.run(_load(port, requests, spec["concurrency"], spec["duration"], spec["max_requests"]))
    sys.stdout.write(orjson.dumps(result).decode())


if __name__ == "__main__":
    client_main(sys.argv[1:])
