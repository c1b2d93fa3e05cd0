"""Personal-key look-up benchmark (issue 14, "Benchmark"), on one core:

    .venv/bin/python -m benchmarks.psk_bench [--sizes 100,1000,10000,50000]
                                             [--requests 200] [--json out.json]
    .venv/bin/python -m benchmarks.psk_bench --quick     # about a second

1. handshake: ``keyfinder.find`` for a station that sends the ANonce and
   EAPoL-Key message 2 and is not known yet, its key at a random place
   among N held keys (PMKs derived once, as the box does): p50 and p99.
2. plain loop: what an implementation without a PMK cache does, derive each
   candidate's PMK (PBKDF2, 4096 rounds) per request until one yields the
   MIC. Run for real up to ``--plain-max`` keys; beyond, the cost of one
   PBKDF2 measured here times the keys to scan (said so in the output).
3. known station: the same handshake from a station bound to its key (one
   MIC check), and the MAC-only form (hostapd 2.10): one look-up.
4. refresh: what the access points' server does every second, the ring
   taking the daemon's keys (``KeyRing.update``): the same list as last
   time (nothing changed: skipped) against a new list of the same keys
   (every key compared; each refresh did that before). Up to
   ``--refresh-max`` keys: the ring first derives every key's PMK, as the
   box does once.

The look-up does not depend on how the held PMKs were made, so those of the
other N - 1 keys are random 32 octets; the searched key's is derived from
its passphrase. docs/benchmarks-keys.md holds the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from passerelle.gateway import keyfinder, psk
from passerelle.gateway.ap_server import ApKey, KeyRing

SSID = "Passerelle-Private"
BSSID = "02:aa:00:00:00:01"
STATION = "02:5e:00:00:00:07"
T = TypeVar("T")
RSN_IE = bytes.fromhex("30140100000fac040100000fac040100000fac020000")


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def percentiles(samples: Sequence[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {"p50_ms": statistics.median(ordered) * 1e3, "p99_ms": p99 * 1e3,
            "n": len(ordered)}


def held_keys(count: int, rng: random.Random) -> list[keyfinder.HeldKey]:
    return [keyfinder.HeldKey(f"p{i}@acme.example", f"k{i}", f"key-of-person-{i:06d}",
                              rng.randbytes(32), vlan=100 + i % 4) for i in range(count)]


def handshake(passphrase: str, pmk: bytes) -> keyfinder.Join:
    anonce, snonce = secrets.token_bytes(32), secrets.token_bytes(32)
    aa, spa = (bytes.fromhex(m.replace(":", "")) for m in (BSSID, STATION))
    frame = psk.build_message2(pmk, aa, spa, anonce, snonce, key_data=RSN_IE)
    return keyfinder.Join(STATION, BSSID, SSID, anonce, frame)


CPU: list[float] = []  # thread CPU seconds of the last timed calls (preemption excluded)


def timed(fn: Callable[..., T], *args: Any, **kwargs: Any) -> tuple[float, T]:
    """(wall seconds, result) of one call; its CPU seconds go to ``CPU``."""
    cpu = time.thread_time()
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    wall = time.perf_counter() - start
    CPU.append(time.thread_time() - cpu)
    return wall, result


def plain_loop(keys: Sequence[keyfinder.HeldKey], join: keyfinder.Join) -> str | None:
    """No PMK cache: PBKDF2 for each candidate, then its MIC."""
    assert join.eapol is not None and join.anonce is not None and join.bssid is not None
    message = psk.parse_message2(join.eapol)
    aa, spa = (bytes.fromhex(m.replace(":", "")) for m in (join.bssid, join.station))
    for key in keys:
        if psk.verifies(psk.pmk(key.passphrase, SSID), message, aa, spa, join.anonce):
            return key.person
    return None


def run_size(count: int, requests: int, plain_requests: int, plain_max: int,
             pbkdf2_s: float, rng: random.Random) -> dict[str, Any]:
    keys = held_keys(count, rng)
    out: dict[str, Any] = {"keys": count}
    samples: list[float] = []
    cpu: list[float] = []
    plain: list[float] = []
    for _ in range(requests):
        at = rng.randrange(count)
        target = keys[at]
        real = psk.pmk(target.passphrase, SSID)
        keys[at] = keyfinder.HeldKey(target.person, target.key_id, target.passphrase, real,
                                     target.vlan)
        held = keyfinder.Held.of(keys)
        join = handshake(target.passphrase, real)
        took, decision = timed(keyfinder.find, join, held, {}, ssid=SSID, candidates_max=0)
        samples.append(took)
        cpu.append(CPU[-1])
        assert isinstance(decision, keyfinder.Accept) and decision.person == target.person
        if count <= plain_max and len(plain) < plain_requests:
            took, found = timed(plain_loop, keys, join)
            plain.append(took)
            assert found == target.person
        keys[at] = target
    out["handshake"] = percentiles(samples)
    out["handshake_cpu"] = percentiles(cpu)
    if plain:
        out["plain_loop"] = percentiles(plain)
    else:  # scanning half the keys on average, all of them at worst
        out["plain_loop_estimated"] = {"p50_ms": pbkdf2_s * count / 2 * 1e3,
                                       "worst_ms": pbkdf2_s * count * 1e3}
    # A known station: bound to its key (handshake) or by MAC only.
    target = keys[rng.randrange(count)]
    real = psk.pmk(target.passphrase, SSID)
    keys = [k if k is not target else keyfinder.HeldKey(
        k.person, k.key_id, k.passphrase, real, k.vlan) for k in keys]
    held = keyfinder.Held.of(keys)
    bound = {STATION: target.key_id}
    known: list[float] = []
    by_mac: list[float] = []
    for _ in range(requests):
        join = handshake(target.passphrase, real)
        took, decision = timed(keyfinder.find, join, held, bound, ssid=SSID, candidates_max=0)
        assert isinstance(decision, keyfinder.Accept) and decision.person == target.person
        known.append(took)
        mac_only = keyfinder.Join(STATION, BSSID, SSID)
        took, decision = timed(keyfinder.find, mac_only, held, bound, ssid=SSID,
                               candidates_max=0)
        assert isinstance(decision, keyfinder.Accept) and decision.person == target.person
        by_mac.append(took)
    out["known_handshake"] = percentiles(known)
    out["known_mac"] = percentiles(by_mac)
    return out


def refresh(count: int, rounds: int) -> dict[str, float]:
    """KeyRing.update with ``count`` keys held, in ms (median of ``rounds``)."""
    keys = [ApKey(f"p{i}@acme.example", f"k{i}", f"key-of-person-{i:06d}", vlan=100 + i % 4)
            for i in range(count)]
    ring = KeyRing(SSID)
    ring.update(keys)  # every PMK derived, once
    same = [timed(ring.update, keys)[0] for _ in range(rounds)]
    fresh = [timed(ring.update, list(keys))[0] for _ in range(rounds)]
    assert len(ring.held.keys) == count
    return {"same_list_ms": statistics.median(same) * 1e3,
            "new_list_ms": statistics.median(fresh) * 1e3}


def report(results: dict[str, Any]) -> str:
    lines = [f"PBKDF2 (one PMK): {results['pbkdf2_ms']:.2f} ms; load "
             f"{results['load_before'][0]:.1f} before, {results['load_after'][0]:.1f} after",
             f"{'keys':>7} {'handshake p50/p99 ms':>22} {'CPU p99':>8} "
             f"{'plain loop p50/p99 ms':>24} {'known hs p99':>13} {'known MAC p99':>14} "
             f"{'refresh same/new ms':>20}"]
    for row in results["sizes"]:
        hs = row["handshake"]
        if "plain_loop" in row:
            plain = f"{row['plain_loop']['p50_ms']:.0f} / {row['plain_loop']['p99_ms']:.0f}"
        else:
            est = row["plain_loop_estimated"]
            plain = f"~{est['p50_ms']:.0f} / ~{est['worst_ms']:.0f} (est.)"
        lines.append(f"{row['keys']:>7} {hs['p50_ms']:>10.2f} / {hs['p99_ms']:<9.2f} "
                     f"{row['handshake_cpu']['p99_ms']:>8.2f} "
                     f"{plain:>24} {row['known_handshake']['p99_ms']:>13.3f} "
                     f"{row['known_mac']['p99_ms']:>14.4f} "
                     + (f"{row['refresh']['same_list_ms']:>9.4f} / "
                        f"{row['refresh']['new_list_ms']:<8.2f}" if "refresh" in row
                        else f"{'-':>20}"))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100,1000,10000,50000",
                        help="comma-separated counts of held keys")
    parser.add_argument("--requests", type=int, default=200, help="look-ups per size")
    parser.add_argument("--plain-requests", type=int, default=5,
                        help="plain-loop requests per size (each derives PMKs)")
    parser.add_argument("--plain-max", type=int, default=1000,
                        help="run the plain loop for real up to this many keys")
    parser.add_argument("--refresh-max", type=int, default=10000,
                        help="measure the ring's refresh up to this many keys")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes, about a second (a smoke test)")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--json", type=Path, help="write every figure here too")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.requests, args.plain_requests, args.plain_max = "10,100", 20, 2, 10
    rng = random.Random(args.seed)
    results: dict[str, Any] = {"cpus": os.cpu_count(), "load_before": os.getloadavg()}
    derive = [timed(psk.pmk, f"warm-up-key-{i:04d}", SSID)[0] for i in range(20)]
    results["pbkdf2_ms"] = statistics.median(derive) * 1e3
    results["sizes"] = []
    for count in (int(n) for n in args.sizes.split(",")):
        say(f"{count} keys ...")
        row = run_size(count, args.requests, args.plain_requests, args.plain_max,
                       results["pbkdf2_ms"] / 1e3, rng)
        if count <= args.refresh_max:
            row["refresh"] = refresh(count, 5 if args.quick else 20)
        results["sizes"].append(row)
    results["load_after"] = os.getloadavg()
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    print(report(results))
    return results


if __name__ == "__main__":
    main()
