"""Peak RSS of checking one segment object of N changes (the incident's 266,561 dose updates,
old and new rows): the whole-object path (verify before) vs the streaming one (check_object),
each in a fresh process started by a small launcher (a child's ru_maxrss starts at its parent's):
    PYTHONPATH=. .venv/bin/python /work/notes/scale-scripts/verify_memory.py [N]"""
import os, resource, subprocess, sys, tempfile
from datetime import UTC, datetime


def generate(n: int, path: str) -> None:
    from backup.storage import codec
    from backup.storage.change import Change, Op
    from backup.storage.segment import encode_changes
    row = {"id": 1, "recipient_id": 1, "dose_number": 1, "vaccine_code": "AZD1222", "lot_number": "AZD12345",
           "administered_on": "2021-08-07", "center_id": 12, "next_due_on": "2021-09-04",
           "recorded_by": "staff-12-3", "created_at": "2021-08-07T10:00:00+00:00",
           "updated_at": "2021-08-07T10:00:00+00:00"}
    changes = (Change(position=i, txid=1000, committed_at=datetime(2026, 12, 1, tzinfo=UTC), table="doses",
                      op=Op.UPDATE, key={"id": i}, old={**row, "id": i},
                      new={**row, "id": i, "administered_on": None}) for i in range(1, n + 1))
    payload = encode_changes(changes)
    with open(path, "wb") as out:
        out.write(codec.encode(payload, "segments/x.zst", None))
    print(f"segment: {n} changes, payload {len(payload) / 2**20:.0f} MiB, "
          f"stored {os.path.getsize(path) / 2**20:.1f} MiB", flush=True)


def measure(path: str, side: str) -> None:
    from backup.storage import codec
    from backup.storage.object_check import check_object
    from backup.storage.segment import iter_changes
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if side == "whole":
        data = open(path, "rb").read()
        codec.sha256(data)
        rows = sum(1 for _ in iter_changes(codec.decode(data, "segments/x.zst", None), "x"))
    else:
        def pieces():
            with open(path, "rb") as f:
                while piece := f.read(1 << 20):
                    yield piece
        rows = check_object(pieces(), "segments/x.zst", None, deep=True, changes=True).rows
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"{side}: {rows} changes, peak RSS {peak / 1024:.0f} MiB (after imports {base / 1024:.0f} MiB)",
          flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["gen"]:
        generate(int(sys.argv[2]), sys.argv[3])
    elif sys.argv[1:2] == ["measure"]:
        measure(sys.argv[2], sys.argv[3])
    else:
        n = int(sys.argv[1]) if len(sys.argv) > 1 else 266_561
        path = tempfile.mktemp(suffix=".zst")
        subprocess.run([sys.executable, __file__, "gen", str(n), path], check=True)
        for side in ("whole", "stream"):
            subprocess.run([sys.executable, __file__, "measure", path, side], check=True)
        os.unlink(path)
