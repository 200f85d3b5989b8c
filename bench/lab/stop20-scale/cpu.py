"""CPU seconds of a command: client (children of this process) + server (postmaster's reaped and live children)."""
import os
from bench.process import run_pipeline

TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid):
    return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()


def server_cpu(cluster):
    pm = int((cluster.data_dir / "postmaster.pid").read_text().split()[0])
    f = _stat(pm); total = (int(f[13]) + int(f[14])) / TICK
    for child in open(f"/proc/{pm}/task/{pm}/children").read().split():
        try:
            g = _stat(child); total += (int(g[11]) + int(g[12])) / TICK
        except OSError:
            pass
    return total


def measured(cluster, label, commands, out=None, env=None):
    load = os.getloadavg()[0]
    c0 = server_cpu(cluster); r0 = os.times()
    m = run_pipeline(commands, out, env=env) if out else run_pipeline(commands, env=env)
    r1 = os.times(); c1 = server_cpu(cluster)
    client = (r1.children_user - r0.children_user) + (r1.children_system - r0.children_system)
    print(f"{label:11s} wall {m.seconds:6.2f} s cpu client {client:5.2f} server {c1 - c0:5.2f} "
          f"total {client + c1 - c0:5.2f} rss {m.peak_rss_mib} MiB load {load:.1f}", flush=True)
    return m, client, c1 - c0
