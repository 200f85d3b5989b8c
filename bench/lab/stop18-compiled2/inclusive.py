"""Inclusive share of samples per function from a py-spy raw (collapsed) file: inclusive.py FILE [N]"""
import collections
import sys

total = 0
inclusive: collections.Counter[str] = collections.Counter()
for line in open(sys.argv[1]):
    stack, _, count = line.rstrip().rpartition(" ")
    n = int(count)
    total += n
    frames = stack.split(";")
    for f in set(fr.split(" (")[0] + " " + fr.split("(")[-1].split(":")[0].split("/")[-1] for fr in frames):
        inclusive[f] += n
for name, n in inclusive.most_common(int(sys.argv[2]) if len(sys.argv) > 2 else 60):
    print(f"{100 * n / total:5.1f}% {name}")
