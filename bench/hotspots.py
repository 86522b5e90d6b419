"""Where the time goes in a py-spy profile (collapsed stacks, ``--format raw``).

``python -m bench.hotspots FILE [N]`` prints the N functions of MediaNest, its plugins and its
libraries with the largest share of samples, inclusive (anywhere on the stack) and exclusive
(at the top of it).
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path


def frames(line: str) -> tuple[list[str], int]:
    stack, _, count = line.rpartition(" ")
    return [
        f.split(" (")[0] + " (" + f.split(" (")[1].split(":")[0].rsplit("/", 1)[-1]
        if " (" in f
        else f
        for f in stack.split(";")
    ], int(count)


def main() -> None:
    path, top = Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 25
    inclusive: Counter[str] = Counter()
    exclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        stack, count = frames(line)
        total += count
        for name in set(stack):
            inclusive[name] += count
        exclusive[stack[-1]] += count
    print(f"{total} samples")
    print("inclusive:")
    for name, count in inclusive.most_common(top):
        print(f"  {count / total:6.1%}  {name}")
    print("exclusive:")
    for name, count in exclusive.most_common(top):
        print(f"  {count / total:6.1%}  {name}")


if __name__ == "__main__":
    main()
