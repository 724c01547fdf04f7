#!/usr/bin/env python3
"""Print the clients x scenarios matrix (Markdown) from run.sh outputs.

Usage: interop/matrix.py WARREN_OUTPUT RABBITMQ_OUTPUT

Each output is what `interop/run.sh` printed on stdout (its PASS/FAIL lines), once
against Warren and once against RabbitMQ. A cell is "✓" when the scenario passed
against both, "✗ W", "✗ R" or "✗ W R" naming the broker(s) it failed against, and
"·" when the client does not have that scenario (its README says why).
"""
import re
import sys

LINE = re.compile(r"^(PASS|FAIL) (\S+) (\S+?)(:.*)?$")


def results(path):
    out = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = LINE.match(line.strip())
            if m:
                out[(m.group(2), m.group(3))] = m.group(1) == "PASS"
    return out


def main():
    warren, rabbit = results(sys.argv[1]), results(sys.argv[2])
    clients = sorted({c for c, _ in warren} | {c for c, _ in rabbit})
    order = []
    with open(__file__.rsplit("/", 1)[0] + "/SCENARIOS.md", encoding="utf-8") as f:
        for line in f:
            m = re.match(r"^\| `([a-z_]+)` \|", line)
            if m and m.group(1) not in order:
                order.append(m.group(1))
    extra = sorted({s for _, s in warren} | {s for _, s in rabbit}) 
    scenarios = order + [s for s in extra if s not in order]
    print("| scenario | " + " | ".join(clients) + " |")
    print("|---|" + "---|" * len(clients))
    for s in scenarios:
        cells = []
        for c in clients:
            w, r = warren.get((c, s)), rabbit.get((c, s))
            if w is None and r is None:
                cells.append("·")
            elif w and r:
                cells.append("✓")
            else:
                cells.append("✗ " + " ".join(b for b, ok in (("W", w), ("R", r)) if not ok))
        print(f"| `{s}` | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
