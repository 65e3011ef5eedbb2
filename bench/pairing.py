"""How many guesses of a pairing code an online attacker gets (loopback, bounded).

    .venv/bin/python bench/pairing.py [--attempts 500] [--concurrency 50]

Starts ``mirror pair`` in a fresh home on 127.0.0.1, then attacks it the way
the issue-15 report did: each attempt sends a PAIR_START with a random wrong
code, checks the pairer's key confirmation itself and hangs up without a
word; up to --concurrency attempts at once, --attempts in all (or until the
pairer stops listening). Then the person's own device joins with the right
code. Prints the guesses the pairer answered (a PAIR_REPLY the attacker could
test a guess against), what the rest got, whether the right code still got
in, and the resulting bound on an online attacker's chance per code shown.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import trio

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from protocol import PairingCodeMismatch, RemoteProtocolError
from protocol.limits import MAX_PAIRING_ATTEMPTS, PAIRING_CODE_CHARS
from protocol.pairing import (
    CODE_ALPHABET,
    JOINER,
    Pairing,
    normalize_pairing_code,
)


def env_for(home: Path) -> dict[str, str]:
    return {**os.environ, "MIRROR_HOME": str(home), "PYTHONPATH": str(REPO)}


async def attempt(host: str, port: int, code: str) -> str:
    try:
        stream = await trio.open_tcp_stream(host, port)
    except OSError:
        return "not listening"
    machine = Pairing(JOINER, code, os.urandom(32), os.urandom, device_name="attacker")
    try:
        with trio.move_on_after(60):
            await stream.send_all(machine.data_to_send())
            while True:
                data = await stream.receive_some(65536)
                machine.receive_data(bytes(data))
                if not data:
                    return "hung up on"
                try:
                    event = machine.next_event()
                except PairingCodeMismatch:
                    return "guess answered (wrong)"
                except RemoteProtocolError as exc:
                    return f"refused ({exc.close_code.name})"
                if type(event).__name__ != "NeedData":
                    return "guess answered (RIGHT)"
        return "timed out"
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        return "hung up on"
    finally:
        await stream.aclose()


async def attack(host: str, port: int, right: str, attempts: int, concurrency: int,
                 rng: random.Random) -> Counter[str]:
    """*attempts* wrong guesses, *concurrency* at once; what each got."""
    def wrong() -> str:
        while (guess := "".join(rng.choice(CODE_ALPHABET) for _ in range(8))) == right:
            pass
        return guess

    outcomes: Counter[str] = Counter()
    limiter = trio.CapacityLimiter(concurrency)

    async def one() -> None:
        async with limiter:
            outcomes[await attempt(host, port, wrong())] += 1

    async with trio.open_nursery() as nursery:
        for _ in range(attempts):
            nursery.start_soon(one)
    return outcomes


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--attempts", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    rng = random.Random(15)
    with tempfile.TemporaryDirectory() as tmp:
        pairer_home, joiner_home = Path(tmp) / "pairer", Path(tmp) / "joiner"
        pairing = subprocess.Popen(
            [sys.executable, "-m", "node.cli", "pair", "--json", "--listen", "127.0.0.1:0",
             "--no-discovery", "--timeout", "120"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env_for(pairer_home), cwd=REPO)
        assert pairing.stdout is not None
        shown = json.loads(pairing.stdout.readline())
        code, address = shown["code"], shown["address"]
        host, port = address.rsplit(":", 1)
        started = time.perf_counter()
        outcomes = trio.run(attack, host, int(port), normalize_pairing_code(code).decode(),
                            args.attempts, args.concurrency, rng)
        elapsed = time.perf_counter() - started
        join = subprocess.run(
            [sys.executable, "-m", "node.cli", "join", code, "--address", address,
             "--no-discovery"],
            capture_output=True, env=env_for(joiner_home), cwd=REPO, timeout=120, check=False)
        try:
            status = pairing.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pairing.kill()
            status = pairing.wait()
    answered = sum(n for what, n in outcomes.items() if what.startswith("guess answered"))
    print(f"attempts: {args.attempts} ({args.concurrency} at once) in {elapsed:.1f} s")
    for what, n in sorted(outcomes.items(), key=lambda kv: -kv[1]):
        print(f"  {what:<28} {n}")
    print(f"guesses answered for this code: {answered} (limit MAX_PAIRING_ATTEMPTS = "
          f"{MAX_PAIRING_ATTEMPTS})")
    verdict = "joined" if join.returncode == 0 else "refused: " + join.stderr.decode().strip()
    print(f"the right code afterwards: {verdict}")
    print(f"mirror pair exited with {status}")
    space = len(CODE_ALPHABET) ** PAIRING_CODE_CHARS
    print(f"bound on an online attacker's chance per code shown: {MAX_PAIRING_ATTEMPTS} / "
          f"{space:,} = {MAX_PAIRING_ATTEMPTS / space:.1e}")


if __name__ == "__main__":
    main()
