"""Draws benches/soak.png from benches/soak.csv: the server's RSS, handler
processes and open sockets, sampled every minute of scripts/soak.sh."""
import csv
import sys

from plot import plt

src, out = sys.argv[1], sys.argv[2]
rows = list(csv.DictReader(open(src)))
minute = [int(r["minute"]) for r in rows]
rss = [int(r["rss_kib"]) / 1024 for r in rows]
handlers = [int(float(r["handlers"])) for r in rows]
sockets = [int(float(r["sockets"])) for r in rows]

fig, (a, b) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
a.plot(minute, rss, marker="o")
a.set_ylabel("server RSS (MiB)")
a.set_ylim(bottom=0)
a.grid(alpha=0.3)
a.set_title("Soak: steady clients plus connect/leave churn, 10 ms tick")
b.plot(minute, handlers, marker="o", label="ws_handler processes")
b.plot(minute, sockets, marker="x", label="open WebSockets")
b.set_xlabel("minute")
b.set_ylabel("count")
b.set_ylim(bottom=0)
b.grid(alpha=0.3)
b.legend()
fig.tight_layout()
fig.savefig(out, dpi=100)
