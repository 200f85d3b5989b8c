"""zstd parameter sets on COPY text of the 1M bench (12 MiB pieces, min of 5 rounds, alternating): CPU and bytes.
First: \copy (select * from doses where ctid < '(12000,0)'::tid) to /tmp/scale-doses.txt (and recipients, (10000,0)).
    .venv/bin/python bench/lab/stop19-snapshot2/zstd_params.py"""
import re, zstandard, resource, sys
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF); return r.ru_utime + r.ru_stime
P = zstandard.ZstdCompressionParameters.from_level
variants = {
  "level3": dict(),
  "mm6 h16 c14": dict(min_match=6, hash_log=16, chain_log=14),
  "L2 mm6 h16 c14": "2:mm6,h16,c14",
  "L1 mm6 h16": "1:mm6,h16",
  "L3 mm6 h16 c14 s1": "3:mm6,h16,c14,s1",
  "L3 mm7 h16 c14": "3:mm7,h16,c14",
}
for f in ("/tmp/scale-doses.txt", "/tmp/scale-recipients.txt"):
    data = open(f, "rb").read()
    step = 12 << 20
    pieces = [data[i:i + step] for i in range(0, len(data), step)]
    print(f, len(data))
    res = {}
    for rnd in range(5):
      for name, kw in variants.items():
        if isinstance(kw, str):
            lv, spec = kw.split(":"); names = {"mm": "min_match", "h": "hash_log", "c": "chain_log", "s": "search_log"}
            args = {names[re.match(r"[a-z]+", x).group()]: int(re.search(r"\d+", x).group()) for x in spec.split(",")}
            c = zstandard.ZstdCompressor(compression_params=P(int(lv), **args))
        else:
            c = zstandard.ZstdCompressor(compression_params=P(3, **kw)) if kw else zstandard.ZstdCompressor(level=3)
        c0 = cpu(); size = sum(len(c.compress(p)) for p in pieces); t = cpu() - c0
        res.setdefault(name, []).append(t); res[name + "B"] = size
    for name in variants:
        print(f"  {name:12s} {min(res[name]):6.3f} s (min of 5)  {res[name + 'B']:,} B")
