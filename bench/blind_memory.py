"""The blind store's memory under concurrent maximum uploads (issue 15 item 2).

    .venv/bin/python bench/blind_memory.py [--uploads 30] [--envelope-mib 32]
        [--repo DIR] [-- --store-max-buffered-bytes N ...]

Starts the store alone (``python -m commons_server.blind``) on 127.0.0.1 port 0
in its own process, then sends --uploads uploads at once, each one envelope of
the largest size (32 MiB: a body of 32 MiB + 4 bytes, under the 33 MiB request
limit), each with a fresh token (so each its own log), from this process. The
server's RSS is sampled every 20 ms from /proc. Printed: RSS before, peak during,
after; the uploads' statuses and time; the store's own count of bytes held for
requests (``blindstore_buffered_bytes_peak`` from /metrics).

The per-address quotas are raised for the run (all uploads come from 127.0.0.1);
everything after ``--`` goes to the store as flags. ``--repo DIR`` serves the
store from another checkout (for a before/after comparison).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import trio

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from protocol.keys import store_group_id
from protocol.store import KIND_UPDATE, MAX_ENVELOPE_BYTES, encode_upload, seal_envelope

MIB = 1024 * 1024
SAMPLE_S = 0.02


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def largest_body(envelope_mib: int) -> bytes:
    """One upload body: a single envelope of the largest bucket (the store checks
    shapes, not signatures or groups, so one body serves every token)."""
    token = os.urandom(32)
    target = min(envelope_mib * MIB, MAX_ENVELOPE_BYTES)
    payload = target - 4096  # sealing adds a header; the bucket rounds up to target
    while True:
        envelope = seal_envelope(
            kind=KIND_UPDATE, doc_id="journal/2026-11", payload=os.urandom(payload),
            state_vector=b"\x00", group_secret=os.urandom(32), epoch=0,
            group_id=store_group_id(token), device_seed=bytes(32), nonce=os.urandom(24))
        if len(envelope) <= target:
            return encode_upload([envelope])
        payload -= 4096


async def measure(args: argparse.Namespace, pid: int, url: str, body: bytes) -> dict[str, Any]:
    await trio.sleep(0.5)
    before = peak = rss_mib(pid)
    done = trio.Event()

    async def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_mib(pid))
            await trio.sleep(SAMPLE_S)

    statuses: list[int] = []
    async with httpx.AsyncClient(timeout=httpx.Timeout(600.0),
                                 limits=httpx.Limits(max_connections=args.uploads)) as http:

        async def upload() -> None:
            token = os.urandom(32).hex()
            response = await http.post(url + "/v1/log", content=body,
                                       headers={"authorization": "Bearer " + token})
            statuses.append(response.status_code)

        start = time.perf_counter()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sample)
            async with trio.open_nursery() as uploads:
                for _ in range(args.uploads):
                    uploads.start_soon(upload)
            done.set()
        elapsed = time.perf_counter() - start
        await trio.sleep(0.5)
        after = rss_mib(pid)
        metrics = (await http.get(url + "/metrics")).text if not args.repo else ""
    held_peak = next((int(line.split()[1]) for line in metrics.splitlines()
                      if line.startswith("blindstore_buffered_bytes_peak ")), None)
    return {
        "uploads": args.uploads,
        "body_mib": round(len(body) / MIB, 2),
        "statuses": {str(s): statuses.count(s) for s in sorted(set(statuses))},
        "seconds": round(elapsed, 1),
        "rss_before_mib": round(before, 1),
        "rss_peak_mib": round(peak, 1),
        "rss_after_mib": round(after, 1),
        "held_for_requests_peak_mib": None if held_peak is None else round(held_peak / MIB, 1),
        "store_flags": args.store_args,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uploads", type=int, default=30)
    parser.add_argument("--envelope-mib", type=int, default=32)
    parser.add_argument("--repo", help="serve the store from this checkout instead")
    parser.add_argument("store_args", nargs="*", help="flags for the store (after --)")
    args = parser.parse_args()
    body = largest_body(args.envelope_mib)
    home = Path(tempfile.mkdtemp(prefix="blind-bench-"))
    repo = Path(args.repo).resolve() if args.repo else REPO
    # All uploads come from 127.0.0.1: lift the per-address quotas (an older
    # checkout has none, nor the flags).
    flags = ["--store-max-address-bytes", str(1 << 40), "--store-max-address-logs", "100000"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "commons_server.blind", "--home", str(home), "--port", "0",
         "--json", "--log-level", "WARNING", *(flags if not args.repo else []), *args.store_args],
        stdout=subprocess.PIPE, cwd=repo, env={**os.environ, "PYTHONPATH": str(repo)})
    try:
        assert proc.stdout is not None
        url = json.loads(proc.stdout.readline())["url"]
        print(json.dumps(trio.run(measure, args, proc.pid, url, body), indent=1))
    finally:
        proc.terminate()
        proc.wait(30)
        if proc.stdout is not None:
            proc.stdout.close()


if __name__ == "__main__":
    main()
