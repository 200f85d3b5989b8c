import os, socket, subprocess, sys, time
import boto3
from pathlib import Path
os.environ.setdefault("AWS_ACCESS_KEY_ID", "x"); os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "x")
with socket.socket() as s:
    s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
p = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
for _ in range(100):
    try: socket.create_connection(("127.0.0.1", port)).close(); break
    except OSError: time.sleep(0.1)
c = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1")
c.create_bucket(Bucket="history-moto")
made = 0
for n in (20, 4000):
    while made < n:
        c.put_object(Bucket="history-moto", Key=f"segments/{made:08d}/manifest.json", Body=b"x"); made += 1
    best = 9
    for _ in range(5):
        t = time.perf_counter()
        r = c.list_objects_v2(Bucket="history-moto", Prefix="segments/", StartAfter=f"segments/{n-1:08d}/\x7f")
        best = min(best, time.perf_counter() - t)
    print(f"{n} keys: ListObjectsV2 StartAfter=last -> {r['KeyCount']} keys returned in {best*1000:.1f} ms")
p.terminate()
