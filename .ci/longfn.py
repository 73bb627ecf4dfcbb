#!/usr/bin/env python3
"""Lists the C functions whose body is over N lines (N=80 unless set in the
environment), longest first: a body runs from a '{' at column 0 to the next
'}' at column 0, as the repo's .clang-format lays functions out.

    python3 .ci/longfn.py [DIR...]      (default: bot commands include tests/unit bench)

docs/conventions.md keeps functions under 80 lines; this is how it is
counted. Exits 0 whatever it finds: a place to look, not a gate."""
import sys, os, re
N = int(os.environ.get("N", "80"))
roots = sys.argv[1:] or ["bot", "commands", "include", "tests/unit", "bench"]
out = []
for root in roots:
    for d, _, fs in os.walk(root):
        for f in fs:
            if not f.endswith(".c"): continue
            p = os.path.join(d, f)
            lines = open(p, errors="replace").read().split("\n")
            start = None
            for i, l in enumerate(lines):
                if l.startswith("{"):
                    start = i
                    # name: previous lines
                    j = i - 1
                    while j > 0 and "(" not in lines[j]: j -= 1
                    words = re.sub(r"\(.*", "", lines[j]).split()
                    name = words[-1] if words else "?"
                elif l.startswith("}") and start is not None:
                    n = i - start - 1
                    if n > N: out.append((n, p, name))
                    start = None
for n, p, name in sorted(out, reverse=True): print(f"{n:5d} {p} {name}")
print(len(out), "functions over", N, "lines", file=sys.stderr)
