"""A generated rule file, shared by the engine tests and bench/rules.py."""

from __future__ import annotations


def generated_rules(count: int = 100) -> str:
    """A rule file of ``count`` rules whose conditions a typical lead fails until the last."""
    shapes = [
        "{{all: [{{field: company, contains: acme{i}}}, {{message: subject, regex: 'q{i}\\b'}}]}}",
        "{{any: [{{field: territory, equals: T{i}}}, {{header: X-Tag, in: [a{i}, b{i}]}}]}}",
        "{{not: {{field: custom.tier, equals: silver}}}}",
        "{{all: [{{message: sender_domain, ends_with: .d{i}}}, {{field: custom.b, gt: {i}}}]}}",
    ]
    strategies = ["round_robin", "load_balancing", "weighted"]
    lines = ["timezone: Europe/Berlin", "executives:"]
    lines += [f"  - {{id: e{e}, capacity: 100, weight: {1 + e % 3}}}" for e in range(10)]
    lines.append("rules:")
    for i in range(count - 1):
        lines += [
            f"  - name: r{i}",
            f"    priority: {i % 7}",
            f"    when: {shapes[i % 4].format(i=i)}",
            f"    assign: {{strategy: {strategies[i % 3]}, to: [e{i % 10}, e{(i + 1) % 10}]}}",
        ]
        if i % 5 == 0:
            lines.append("    schedule: {days: [mon, tue, wed, thu, fri], hours: '09:00-18:00'}")
    lines += [
        "  - name: catch-all",
        "    priority: -1",
        "    assign: {strategy: round_robin, to: [e0, e1, e2, e3, e4, e5, e6, e7, e8, e9]}",
    ]
    return "\n".join(lines) + "\n"
