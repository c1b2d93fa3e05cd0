"""RADIUS through RadSec against plain UDP, from the box's side, in one run.

    .venv/bin/python -m benchmarks.radsec_bench [--duration 10] [--threads 8]
        [--pg postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

One `passerelle radius serve` on a fresh PostgreSQL database answers both:
UDP on its ports, and RFC 6614 TLS on its RadSec port. The box's RADIUS
client (gateway/radclient.py, ``threads`` threads, each one request at a
time as check-ins and the spool do) sends Access-Requests, then
Accounting-Requests (Starts of distinct sessions), first straight over UDP,
then to Debian's radsecproxy on the loopback, which carries them over TLS
with an enrolment certificate. Prints requests/s, p50 and p99 per transport
and kind, and the ratios RadSec/UDP. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import select

from passerelle.gateway import radsecproxy as rsp
from passerelle.gateway.acct import AccountingRecord
from passerelle.gateway.peers import RadiusServer
from passerelle.gateway.radclient import NasIdentity, RadiusClient
from passerelle.radius import db, enrolment
from passerelle.radius import messages as m
from passerelle.radius.models import Gateway

from . import world
from .loadgen import NAS_ID, NAS_IP, PASSWORD, login, session_class

BIN = Path(sys.executable).parent / "passerelle"
SECRET = "s3cret-for-bench"
LOCAL_SECRET = "loopback-bench-secret"


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def enrol(url: str, tmp: Path) -> tuple[Path, Path, Path]:
    """The box's key and certificate, signed as at enrolment."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench")]))
           .sign(key, hashes.SHA256()))
    now = datetime.now(UTC).replace(tzinfo=None)
    engine = db.make_engine(url)
    try:
        with db.make_sessionmaker(engine)() as s, s.begin():
            gateway = s.scalars(select(Gateway).where(Gateway.identifier == NAS_ID)).one()
            cert, _ = enrolment.sign(s, gateway, csr.public_bytes(
                serialization.Encoding.PEM).decode(), now)
            ca = enrolment.ca_certificate(s, now)
    finally:
        engine.dispose()
    paths = tmp / "box.pem", tmp / "box.key", tmp / "ca.pem"
    paths[0].write_text(cert)
    paths[1].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    paths[1].chmod(0o600)
    paths[2].write_text(ca)
    return paths


def measure(call: Callable[[int, int], None], threads: int, duration: float) -> dict[str, float]:
    """``threads`` threads calling ``call(thread, n)`` for ``duration`` s."""
    latencies: list[list[float]] = [[] for _ in range(threads)]
    failures = [0] * threads
    stop = time.monotonic() + duration

    def work(t: int) -> None:
        n = 0
        while time.monotonic() < stop:
            started = time.perf_counter()
            try:
                call(t, n)
            except Exception:
                failures[t] += 1
            else:
                latencies[t].append(time.perf_counter() - started)
            n += 1

    began = time.monotonic()
    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.monotonic() - began
    done = sorted(x for per in latencies for x in per)
    if not done:
        return {"rps": 0.0, "p50": 0.0, "p99": 0.0, "failed": float(sum(failures))}
    return {"rps": len(done) / elapsed, "p50": statistics.median(done) * 1000,
            "p99": done[min(len(done) - 1, int(0.99 * len(done)))] * 1000,
            "failed": float(sum(failures))}


def run(client: RadiusClient, kind: str, label: str, people: int, threads: int,
        duration: float) -> dict[str, float]:
    def auth(t: int, n: int) -> None:
        i = (t * 7919 + n) % people
        if not client.authenticate(login(i), PASSWORD, mac=_mac(i), ipv4="198.51.100.20"
                                   ).accepted:
            raise RuntimeError("refused")

    def acct(t: int, n: int) -> None:
        i = (t * 7919 + n) % people
        client.account(AccountingRecord(
            m.AcctStatus.START, session_id=f"{label}-{t}-{n}", username=login(i), mac=_mac(i),
            ipv4="198.51.100.20", class_=session_class(i).encode(), event_time=time.time()))

    return measure(auth if kind == "auth" else acct, threads, duration)


def _mac(i: int) -> str:
    return "02:00:" + ":".join(f"{(i >> shift) & 255:02x}" for shift in (24, 16, 8, 0))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--people", type=int, default=200)
    args = parser.parse_args(argv)

    url = world.create_database(args.pg, f"radsec_bench_{os.getpid()}")
    with tempfile.TemporaryDirectory(prefix="radsec-bench-") as name:
        tmp = Path(name)
        os.environ["PASSERELLE_KEY_FILE"] = str(tmp / "server.key")
        server = proxy = None
        try:
            world.seed_passerelle(url, args.people, SECRET)
            cert, key, ca = enrol(url, tmp)
            tls_port = free_port()
            with (tmp / "radius.log").open("w") as err:
                server = subprocess.Popen(
                    [str(BIN), "radius", "serve", "--db", url, "--listen", "127.0.0.1",
                     "--auth-port", "0", "--acct-port", "0", "--radsec-port", str(tls_port),
                     "--radsec-name", "127.0.0.1"], stdout=subprocess.PIPE, stderr=err,
                    text=True)
            assert server.stdout is not None
            found = re.search(r"auth (\d+) acct (\d+)", server.stdout.readline())
            if not found:
                print((tmp / "radius.log").read_text(), file=sys.stderr)
                return 1
            auth_port, acct_port = int(found[1]), int(found[2])
            local = free_port(socket.SOCK_DGRAM)
            proxy = rsp.Proxy(rsp.ProxyConfig(
                centre=rsp.Centre("127.0.0.1", tls_port), cert=cert, key=key, ca=ca,
                local_secret=LOCAL_SECRET, local_port=local, log_file=tmp / "proxy.log"),
                tmp / "radsecproxy.conf")
            proxy.start()
            nas = NasIdentity(NAS_ID, NAS_IP)
            clients = {
                "udp": RadiusClient([RadiusServer("127.0.0.1", SECRET.encode(), auth_port,
                                                  acct_port)], nas, timeout=2.0, tries=3),
                "radsec": RadiusClient([RadiusServer("127.0.0.1", LOCAL_SECRET.encode(), local,
                                                     local)], nas, timeout=2.0, tries=3),
            }
            # Warm up radsecproxy's TLS connection, and the server's password
            # cache for everyone (or the first transport measured pays argon2).
            for client, count in ((clients["radsec"], 5), (clients["udp"], args.people)):
                for i in range(count):
                    _retry(lambda c=client, i=i: c.authenticate(  # type: ignore[misc]
                        login(i), PASSWORD, mac=_mac(i), ipv4="198.51.100.20"))
            results = {}
            for kind in ("auth", "acct"):
                for label, client in clients.items():
                    results[label, kind] = run(client, kind, label, args.people, args.threads,
                                               args.duration)
            print(f"{'transport':<8} {'kind':<5} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
                  f"{'failed':>6}")
            for (label, kind), r in results.items():
                print(f"{label:<8} {kind:<5} {r['rps']:>8.0f} {r['p50']:>8.2f} "
                      f"{r['p99']:>8.2f} {r['failed']:>6.0f}")
            for kind in ("auth", "acct"):
                udp, tls = results["udp", kind], results["radsec", kind]
                ratio = tls["rps"] / udp["rps"] if udp["rps"] else 0.0
                p99 = tls["p99"] / udp["p99"] if udp["p99"] else 0.0
                print(f"{kind}: ratio radsec/udp req/s {ratio:.2f}, p99 {p99:.2f}")
        finally:
            if proxy is not None:
                proxy.stop()
            if server is not None:
                server.terminate()
                server.wait(10)
                if server.stdout:
                    server.stdout.close()
            world.drop_database(url)
    return 0


def _retry(call: Callable[[], object]) -> None:
    for attempt in range(5):
        try:
            call()
            return
        except Exception:
            if attempt == 4:
                raise
            time.sleep(0.5)


if __name__ == "__main__":
    sys.exit(main())
