"""Rule-engine benchmark: the time of one ``decide`` on a 100-rule file (target median < 100 µs).

The file is ``tests.rulegen.generated_rules(100)``: 99 rules with two conditions each (field
contains / regex on the subject / header in / not equals / ends_with + numeric custom field),
a schedule on every fifth, priorities mixed, and a catch-all last. Two workloads:

- worst: a lead that fails every rule until the catch-all (100 rules tried, 100 trace entries);
- varied: 1,000 different leads and messages, a random share of which match some rule early.

Each decision is timed alone with ``perf_counter_ns``; medians and p99 over ``--decisions``
calls per run, median over ``--runs`` runs. Loading the file is timed too (once per run).

Usage: python bench/rules.py [--decisions 20000] [--runs 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.rulegen import generated_rules  # noqa: E402
from worker.routing.engine import decide  # noqa: E402
from worker.routing.facts import LeadFacts, MessageFacts, RoutingState  # noqa: E402
from worker.routing.loader import load_rules  # noqa: E402
from worker.routing.schema import RuleSet  # noqa: E402

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)  # a Wednesday, inside office hours
TARGET_US = 100.0


def worst_case() -> list[tuple[LeadFacts, MessageFacts]]:
    lead = LeadFacts(
        {"company": "Globex", "territory": "EU", "custom": {"tier": "silver", "b": -1}}
    )
    message = MessageFacts(
        sender_domain="globex.com", subject="Please quote 20 widgets", headers={"x-tag": ("z",)}
    )
    return [(lead, message)]


def varied(seed: int = 7, count: int = 1000) -> list[tuple[LeadFacts, MessageFacts]]:
    rng = random.Random(seed)
    cases = []
    for n in range(count):
        i = rng.randrange(140)  # some name a rule (i < 99), most do not
        lead = LeadFacts(
            {
                "company": rng.choice([None, f"Acme{i} Ltd", f"Firm {n}"]),
                "territory": rng.choice(["EU", f"T{i}", "APAC"]),
                "email": f"buyer{n}@firm{n}.example",
                "status": "Lead",
                "custom": {"tier": rng.choice(["silver", "gold"]), "b": rng.randrange(-5, 120)},
            }
        )
        message = MessageFacts(
            sender=f"buyer{n}@firm{n}.d{i}",
            sender_domain=f"firm{n}.d{i}",
            subject=rng.choice([f"Re: q{i} pricing", "Hello", f"Quote for {n} chairs"]),
            body="Please send a quote.",
            headers={"x-tag": (rng.choice([f"a{i}", "z"]),)},
        )
        cases.append((lead, message))
    return cases


def time_decisions(
    rules: RuleSet, cases: list[tuple[LeadFacts, MessageFacts]], count: int
) -> list[int]:
    state = RoutingState(open_leads={f"e{i}": i for i in range(10)})
    samples: list[int] = []
    clock = time.perf_counter_ns
    for k in range(count):
        lead, message = cases[k % len(cases)]
        start = clock()
        decide(rules, lead, message, state, NOW)
        samples.append(clock() - start)
    return samples


def percentile(values: list[int], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    text = generated_rules(100)
    results: dict[str, dict[str, list[float]]] = {
        "worst": {"median": [], "p99": []},
        "varied": {"median": [], "p99": []},
    }
    loads: list[float] = []
    for _ in range(args.runs):
        started = time.perf_counter()
        rules = load_rules(text, "bench-100.yaml")
        loads.append(time.perf_counter() - started)
        assert len(rules.rules) == 100
        for name, cases in (("worst", worst_case()), ("varied", varied())):
            time_decisions(rules, cases, 500)  # warm-up
            samples = time_decisions(rules, cases, args.decisions)
            results[name]["median"].append(statistics.median(samples) / 1000)
            results[name]["p99"].append(percentile(samples, 0.99) / 1000)
    summary: dict[str, Any] = {
        "machine": f"{platform.processor() or platform.machine()}, {platform.python_version()}",
        "load_ms": statistics.median(loads) * 1000,
    }
    for name, figures in results.items():
        summary[name] = {
            "median_us": statistics.median(figures["median"]),
            "p99_us": statistics.median(figures["p99"]),
            "median_per_run_us": [round(v, 1) for v in figures["median"]],
        }
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"100-rule file loads in {summary['load_ms']:.1f} ms (median of {args.runs})")
    print(f"{'workload':<8} {'median µs':>10} {'p99 µs':>8}  per-run medians")
    for name in ("worst", "varied"):
        row = summary[name]
        print(
            f"{name:<8} {row['median_us']:>10.1f} {row['p99_us']:>8.1f}  {row['median_per_run_us']}"
        )
    verdict = "PASS" if summary["worst"]["median_us"] < TARGET_US else "MISS"
    print(f"target: median < {TARGET_US:.0f} µs on the worst case: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
