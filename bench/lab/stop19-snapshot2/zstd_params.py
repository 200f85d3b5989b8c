"""zstd parameter sets on COPY text of the 1M bench (12 MiB pieces, min of 5 rounds, alternating): CPU and bytes.
First: \copy (select * from doses where ctid < '(12000,0)'::tid) to /tmp/snapshot2-doses.txt (and recipients, (10000,0)).
    .venv/bin/python bench/lab/stop19-snapshot2/zstd_params.py"""
import zstandard, resource, sys
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF); return r.ru_utime + r.ru_stime
P = zstandard.ZstdCompressionParameters.from_level
variants = {
  "level3": dict(),
  "mm6 h16 c14": dict(min_match=6, hash_log=16, chain_log=14),
  "mm6 h16 c15": dict(min_match=6, hash_log=16, chain_log=15),
  "mm6 h16 c13": dict(min_match=6, hash_log=16, chain_log=13),
  "mm6 h17 c14": dict(min_match=6, hash_log=17, chain_log=14),
}
for f in ("/tmp/snapshot2-doses.txt", "/tmp/snapshot2-recipients.txt"):
    data = open(f, "rb").read()
    step = 12 << 20
    pieces = [data[i:i + step] for i in range(0, len(data), step)]
    print(f, len(data))
    res = {}
    for rnd in range(5):
      for name, kw in variants.items():
        c = zstandard.ZstdCompressor(compression_params=P(3, **kw)) if kw else zstandard.ZstdCompressor(level=3)
        c0 = cpu(); size = sum(len(c.compress(p)) for p in pieces); t = cpu() - c0
        res.setdefault(name, []).append(t); res[name + "B"] = size
    for name in variants:
        print(f"  {name:12s} {min(res[name]):6.3f} s (min of 5)  {res[name + 'B']:,} B")
