"""The lab: a whole site on one machine, for `passerelle demo --site`, the
tests and the benchmarks. Never imported by the product packages (radius,
gateway, portal): a box or a centre in service runs without it."""
