"""The site gateway's benchmark (issue 3, "Benchmark"), in the lab of
tests/lab.py. Run as root from the repository:

    .venv/bin/python -m benchmarks.gateway_bench [--json out.json] [--parts ...]

1. throughput: iperf3 TCP from the lab's client to the upstream host through
   the box, (a) with the passerelle table and 10,000 authorised clients in its
   sets besides the real one, (b) with plain routing: no passerelle table,
   only a masquerade rule in a table of its own. Runs interleaved; ratio a/b.
2. latency: check-in from the ``Gateway.check_in`` call to the first packet
   of that client forwarded upstream, RADIUS excluded (benchmarks/gateway/
   inbox.py, probe.py explain how).
3. interim: CPU and wall time of one sweep over 5,000 sessions when every
   interim update is due (spool writes included).
4. control: 500 check-ins through the control socket, paced at 50/s (500 in
   10 s), then as fast as they go; RADIUS stand-in.
5. centre: the same 500 check-ins through the real daemon (`passerelle gateway
   run`) with the real centre (`passerelle radius serve`) in the lab.

docs/benchmarks-gateway.md holds the figures and how to read them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from passerelle.gateway.nft import Firewall, FirewallPlan
from tests.lab import Lab

from .gateway import centre
from .gateway.plan import (
    bulk_clients,
    fill_script,
    median,
    plain_script,
    remove_plain_script,
)

ROOT = Path(__file__).resolve().parent.parent
BULK = 10_000
KERNEL_TIMEOUT = 3600
# (through, with the proposals of benchmarks/gateway/inbox.py)
LATENCY_VARIANTS = (("direct", False), ("control", False), ("control", True))


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def load() -> float:
    return os.getloadavg()[0]


def in_ns(lab: Lab, role: str, *cmd: str, timeout: float = 600,
          input: str | None = None) -> str:
    """Run ``cmd`` in the lab namespace from the repository (for ``-m benchmarks...``)."""
    out = subprocess.run(["ip", "netns", "exec", lab.ns[role], *cmd], cwd=ROOT, input=input,
                         capture_output=True, text=True, timeout=timeout, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{role}: {' '.join(cmd)} exited {out.returncode}:\n"
                           f"{out.stdout[-2000:]}{out.stderr[-4000:]}")
    return out.stdout


def nft(lab: Lab, script: str) -> None:
    in_ns(lab, "gw", "nft", "-f", "-", input=script)


def helper(lab: Lab, mode: str, *args: str) -> dict[str, Any]:
    """benchmarks/gateway/inbox.py in the gw namespace; its JSON result."""
    state = Path(tempfile.mkdtemp(prefix="psl-gwbench-", dir="/var/tmp"))
    try:
        out = in_ns(lab, "gw", sys.executable, "-m", "benchmarks.gateway.inbox", mode,
                    "--state", str(state), *args)
    finally:
        shutil.rmtree(state, ignore_errors=True)
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def fresh_table(lab: Lab, fw: Firewall, bulk: list[tuple[str, str]]) -> float:
    """The passerelle table from scratch with ``bulk`` clients; seconds the fill took."""
    nft(lab, remove_plain_script())
    fw.remove()
    fw.apply()
    start = time.perf_counter()
    if bulk:
        nft(lab, fill_script(bulk, KERNEL_TIMEOUT))
    return time.perf_counter() - start


# --- 1. throughput ---------------------------------------------------------------


def iperf(lab: Lab, seconds: int) -> dict[str, float]:
    out = in_ns(lab, "client", "iperf3", "-c", lab.web_ipv4, "-t", str(seconds), "-O", "1",
                "-J", timeout=seconds + 30)
    data = json.loads(out)
    end = data["end"]
    return {"bps": float(end["sum_received"]["bits_per_second"]),
            "bytes_sent": float(end["sum_sent"]["bytes"]),
            "cpu_client": float(end["cpu_utilization_percent"]["host_total"]),
            "cpu_server": float(end["cpu_utilization_percent"]["remote_total"])}


def throughput(lab: Lab, fw: Firewall, runs: int, seconds: int,
               count: int = BULK) -> dict[str, Any]:
    bulk = bulk_clients(count)
    me_mac, me_ip = lab.mac["client"], lab.ipv4["client"]
    rates: dict[str, list[float]] = {"passerelle": [], "plain": []}
    loads: list[float] = []
    fills: list[float] = []
    for run in range(runs):
        order = ("passerelle", "plain") if run % 2 == 0 else ("plain", "passerelle")
        for mode in order:
            if mode == "passerelle":
                fills.append(fresh_table(lab, fw, bulk))
                fw.allow(me_mac, me_ip, timeout=KERNEL_TIMEOUT)
            else:
                fw.remove()
                nft(lab, remove_plain_script() + plain_script(lab.lan_if, lab.wan_if))
            loads.append(load())
            got = iperf(lab, seconds)
            rates[mode].append(got["bps"])
            if mode == "passerelle":
                held = fw.clients()
                mine = [c for c in held if c.ipv4 == me_ip]
                # The transfer went through the set: its counter saw every byte sent.
                if len(held) != count + 1 or not mine or mine[0].bytes_up < got["bytes_sent"]:
                    raise RuntimeError(f"the sets hold {len(held)} clients, the client's "
                                       f"counter {mine[0].bytes_up if mine else None} bytes "
                                       f"for {got['bytes_sent']} sent")
            say(f"  throughput run {run + 1} {mode:<10} {got['bps'] / 1e9:6.2f} Gbit/s  "
                f"(load {loads[-1]:.2f})")
    nft(lab, remove_plain_script())
    a, b = median(rates["passerelle"]), median(rates["plain"])
    # Other work on the machine moves both figures a lot from one run to the
    # next; a pair run back to back shares the same conditions.
    pairs = [x / y for x, y in zip(rates["passerelle"], rates["plain"], strict=True)]
    return {"runs": runs, "seconds": seconds, "bulk_clients": count,
            "passerelle_bps": rates["passerelle"], "plain_bps": rates["plain"],
            "median_passerelle_bps": a, "median_plain_bps": b, "ratio_of_medians": a / b,
            "pair_ratios": pairs, "ratio": median(pairs), "fill_s": fills, "load": loads}


# --- the run -----------------------------------------------------------------------


def run_lab(args: argparse.Namespace, results: dict[str, Any]) -> None:
    with Lab() as lab:
        lab.start_internet()
        fw = Firewall(FirewallPlan(lan_if=lab.lan_if, wan_if=lab.wan_if, box_ipv4=lab.box_ipv4,
                           box_ipv6=lab.box_ipv6), netns=lab.ns["gw"])
        if "throughput" in args.parts:
            say("throughput ...")
            results["throughput"] = throughput(lab, fw, args.runs, args.seconds, args.bulk)
        if "latency" in args.parts:
            results["latency"] = []
            for via, proposed in LATENCY_VARIANTS:
                say(f"check-in latency via {via}{' with the proposals' if proposed else ''} ...")
                fill = fresh_table(lab, fw, bulk_clients(args.bulk))
                got = helper(lab, "latency", "--count", str(args.checkins), "--client-ns",
                             lab.ns["client"], "--up-ns", lab.ns["up"], "--upstream",
                             lab.web_ipv4, "--via", via, *(["--proposed"] if proposed else []))
                got.update(background_clients=args.bulk, fill_s=fill, load=load())
                results["latency"].append(got)
        if "interim" in args.parts:
            say("interim round ...")
            fresh_table(lab, fw, [])
            results["interim"] = helper(lab, "interim", "--count", str(args.sessions))
            results["interim"]["load"] = load()
        if "control" in args.parts:
            say("check-ins through the control socket ...")
            fresh_table(lab, fw, [])
            results["control"] = helper(lab, "control", "--count", str(args.control),
                                        "--rate", str(args.rate))
            results["control"]["load"] = load()
        fw.remove()


def report(results: dict[str, Any]) -> str:
    lines = [f"{'measure':<52} {'figure':>14}  target"]

    def row(name: str, figure: str, target: str = "") -> None:
        lines.append(f"{name:<52} {figure:>14}  {target}")

    if "throughput" in results:
        t = results["throughput"]
        row(f"throughput with passerelle + {t['bulk_clients']} clients (median)",
            f"{t['median_passerelle_bps'] / 1e9:.2f} Gbit/s")
        row("throughput with plain routing + masquerade (median)",
            f"{t['median_plain_bps'] / 1e9:.2f} Gbit/s")
        ok = "met" if t["ratio"] >= 0.95 else "MISSED"
        row(f"ratio passerelle / plain, median of {t['runs']} pairs", f"{100 * t['ratio']:.1f} %",
            f">= 95 %: {ok}")
        row("  pair ratios min / max", f"{100 * min(t['pair_ratios']):.0f} / "
            f"{100 * max(t['pair_ratios']):.0f} %")
        row("  ratio of the medians", f"{100 * t['ratio_of_medians']:.1f} %")
        row(f"bulk fill of {t['bulk_clients']} clients (median)", f"{median(t['fill_s']):.3f} s")
    for lat in results.get("latency", []):
        f = lat["first_packet"]
        ok = "met" if f["p99_ms"] <= 20 else "MISSED"
        what = "Gateway.check_in()" if lat["via"] == "direct" else "ControlClient.check_in()"
        if lat["proposed"]:
            what += " + proposals"
        row(f"{what} -> first forwarded packet", f"n={f['n']}")
        row("  p50 / p99", f"{f['p50_ms']:.1f} / {f['p99_ms']:.1f} ms", f"p99 <= 20 ms: {ok}")
        row("  forwarded before check-in / never", f"{lat['forwarded_before_check_in']} / "
            f"{lat['never_forwarded']}", "must be 0 / 0")
        for name, b in lat["breakdown"].items():
            row(f"  of which {name} p50 / p99", f"{b['p50_ms']:.1f} / {b['p99_ms']:.1f} ms")
    if "interim" in results:
        it = results["interim"]
        for name, r in it["rounds"].items():
            row(f"sweep of {it['sessions']} sessions, {name}: wall",
                f"{r['wall_s']:.2f} s")
            row(f"  CPU daemon / nft ({r['records_spooled']} records spooled)",
                f"{r['cpu_s']:.2f} / {r['nft_cpu_s']:.2f} s")
    if "interim" in results:
        it = results["interim"]
        row(f"  (set-up: {it['sessions']} check-ins)", f"{it['setup_s']:.1f} s")
    if "control" in results:
        for name, r in results["control"]["runs"].items():
            lat_ = r["latency"] or {}
            row(f"control check-ins, {name} ({r['workers']} callers)",
                f"{r['ok']}/{r['check_ins']} in {r['elapsed_s']:.1f} s", target(r))
            row("  rate, latency p50 / p99", f"{r['rate_per_s']:.0f}/s, "
                f"{lat_.get('p50_ms', 0):.0f} / {lat_.get('p99_ms', 0):.0f} ms")
            row("  CPU: box + caller / nft + ip", f"{r['process_cpu_s']:.2f} / "
                f"{r['children_cpu_s']:.2f} s")
    if "centre" in results:
        for name, r in results["centre"].items():
            if not isinstance(r, dict):
                continue
            lat_ = r["latency"] or {}
            row(f"real box+centre, {name} ({r['workers']} callers)",
                f"{r['ok']}/{r['check_ins']} in {r['elapsed_s']:.1f} s", target(r))
            row("  rate, latency p50 / p99", f"{r['rate_per_s']:.0f}/s, "
                f"{lat_.get('p50_ms', 0):.0f} / {lat_.get('p99_ms', 0):.0f} ms")
            row("  CPU: daemon / centre", f"{r['daemon_cpu_s']:.2f} / "
                f"{r['centre_cpu_s']:.2f} s")
    return "\n".join(lines)


def target(r: dict[str, Any]) -> str:
    """500 in 10 s: paced, every call done by the last one's start + 0.5 s
    (the box kept up); a burst, everything within 10 s."""
    done = r["ok"] == r["check_ins"]
    if r["rate"]:
        limit = (r["check_ins"] - 1) / r["rate"] + 0.5
        ok = done and r["elapsed_s"] <= limit
        return f"kept pace ({limit:.1f} s): {'met' if ok else 'MISSED'}"
    ok = done and r["elapsed_s"] <= 10
    return f"{r['check_ins']} in 10 s: {'met' if ok else 'MISSED'}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bulk", type=int, default=BULK,
                        help="authorised clients in the sets besides the measured one")
    parser.add_argument("--parts", default="throughput,latency,interim,control,centre",
                        help="comma-separated: throughput, latency, interim, control, centre")
    parser.add_argument("--runs", type=int, default=8, help="iperf3 runs per configuration")
    parser.add_argument("--seconds", type=int, default=2,
                        help="seconds per iperf3 run (after 1 s omitted)")
    parser.add_argument("--checkins", type=int, default=200, help="latency check-ins")
    parser.add_argument("--sessions", type=int, default=5000, help="sessions for the interim")
    parser.add_argument("--control", type=int, default=500, help="control-socket check-ins")
    parser.add_argument("--rate", type=float, default=50.0, help="paced check-ins per second")
    parser.add_argument("--centre-runs", type=int, default=None,
                        help="the first N of the centre part's runs only (default: all)")
    parser.add_argument("--json", type=Path, help="write every figure here too")
    args = parser.parse_args(argv)
    args.parts = set(args.parts.split(","))
    if os.geteuid() != 0:
        sys.exit("Error: the benchmark builds network namespaces: run it as root")
    results: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "kernel": os.uname().release,
                                           "load_before": os.getloadavg()}}
    start = time.time()
    run_lab(args, results)
    if "centre" in args.parts:
        say("check-ins through the real daemon and centre ...")
        results["centre"] = centre.run(args.control, args.rate, say, args.centre_runs)
        results["centre"]["load"] = load()
    results["machine"]["load_after"] = os.getloadavg()
    results["elapsed_s"] = time.time() - start
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    print(report(results))


if __name__ == "__main__":
    main()
