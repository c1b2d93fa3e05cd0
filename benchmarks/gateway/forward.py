"""Where the forwarding overhead goes: iperf3 through the box with rule sets
that differ in one thing each, in round-robin rounds (other work on the
machine moves every figure; each round compares configurations measured
seconds apart). Run as root from the repository:

    .venv/bin/python -m benchmarks.gateway.forward [--rounds 10] [--seconds 2]

Configurations: plain (masquerade only), passerelle with no client but the
one measured, passerelle with 10,000 more, and the same without the rate-cap
lookups (``rate_*`` sets: a proposal, not the shipped ruleset).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

from passerelle.gateway.nft import Firewall, FirewallPlan, ruleset
from tests.lab import Lab

from ..gateway_bench import BULK, KERNEL_TIMEOUT, fresh_table, iperf, nft
from .plan import bulk_clients, median, plain_script, remove_plain_script


def without_rate_lookups(plan: FirewallPlan) -> str:
    return "".join(line + "\n" for line in ruleset(plan).splitlines()
                   if not ("@rate_" in line and line.rstrip().endswith("drop")))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seconds", type=int, default=2)
    parser.add_argument("--bulk", type=int, default=BULK, help="clients besides the measured one")
    args = parser.parse_args(argv)
    with Lab() as lab:
        lab.start_internet()
        plan = FirewallPlan(lan_if=lab.lan_if, wan_if=lab.wan_if, box_ipv4=lab.box_ipv4,
                    box_ipv6=lab.box_ipv6)
        fw = Firewall(plan, netns=lab.ns["gw"])
        me = (lab.mac["client"], lab.ipv4["client"])
        bulk = bulk_clients(args.bulk)

        def passerelle(clients: list[tuple[str, str]], script: str | None = None
                       ) -> Callable[[], None]:
            def setup() -> None:
                fresh_table(lab, fw, clients)
                if script is not None:
                    nft(lab, script)
                fw.allow(*me, timeout=KERNEL_TIMEOUT)
            return setup

        def plain() -> None:
            fw.remove()
            nft(lab, remove_plain_script() + plain_script(lab.lan_if, lab.wan_if))

        configs: dict[str, Callable[[], None]] = {
            "plain": plain,
            "passerelle, 1 client": passerelle([]),
            f"passerelle, {args.bulk} + 1": passerelle(bulk),
            f"passerelle, {args.bulk} + 1, no rate lookups": passerelle(
                bulk, without_rate_lookups(plan)),
        }
        rates: dict[str, list[float]] = {name: [] for name in configs}
        for r in range(args.rounds):
            names = list(configs)
            names = names[r % len(names):] + names[:r % len(names)]
            for name in names:
                configs[name]()
                rates[name].append(iperf(lab, args.seconds)["bps"])
        fw.remove()
        nft(lab, remove_plain_script())
    base = rates["plain"]
    out = {}
    for name, got in rates.items():
        ratios = [x / y for x, y in zip(got, base, strict=True)]
        out[name] = {"median_gbps": median(got) / 1e9, "median_ratio_to_plain": median(ratios)}
        print(f"{name:<44} {median(got) / 1e9:6.2f} Gbit/s  "
              f"{100 * median(ratios):5.1f} % of plain (median of round ratios)")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
