import sys, collections
tot = collections.Counter(); self_ = collections.Counter(); n = 0
for line in open(sys.argv[1]):
    stack, _, c = line.rstrip().rpartition(" ")
    c = int(c); n += c
    frames = stack.split(";")
    seen = set()
    for f in frames:
        f = f.split(" (")[0] + " " + (f.split("/")[-1] if "/" in f else "")
        if f not in seen:
            tot[f] += c; seen.add(f)
    self_[frames[-1]] += c
print("total samples", n)
for f, c in tot.most_common(int(sys.argv[2]) if len(sys.argv) > 2 else 40):
    print(f"{c:6d} {100*c/n:5.1f}% {f}")
print("--- self")
for f, c in self_.most_common(15):
    print(f"{c:6d} {100*c/n:5.1f}% {f}")
