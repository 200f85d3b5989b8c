"""Summarise py-spy raw (collapsed) output: samples per thread, per leaf frame, per 'interesting' frame."""
import sys, collections, re
rate = float(sys.argv[2]) if len(sys.argv) > 2 else 200
threads = collections.Counter(); leaves = collections.Counter(); incl = collections.Counter()
total = 0
for line in open(sys.argv[1]):
    stack, _, count = line.rstrip().rpartition(" ")
    count = int(count); total += count
    frames = stack.split(";")
    threads[frames[0]] += count
    leaves[frames[-1]] += count
    for f in set(frames[1:]):
        incl[re.sub(r" \(.*", "", f)] += count
print(f"total samples {total} = {total/rate:.2f} s of CPU-ish")
for t, c in threads.most_common(10): print(f"  thread {c/rate:6.2f} s  {t}")
print("leaves:")
for t, c in leaves.most_common(25): print(f"  {c/rate:6.2f} s  {t}")
print("inclusive:")
for t, c in incl.most_common(40): print(f"  {c/rate:6.2f} s  {t}")
