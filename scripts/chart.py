"""Draws benches/fanout.png from benches/results.csv: deliveries per second,
ratio to the kernel floor, and p99 latency against the number of clients."""
import csv
import sys

from plot import plt

src, out = sys.argv[1], sys.argv[2]
rows = list(csv.DictReader(open(src)))
clients = [int(r["clients"]) for r in rows]
labels = [f'{r["clients"]}\n({r["tick"]})' for r in rows]
tps = [float(r["ticks_per_s_per_client"] or 0) for r in rows]
deliveries = [c * t for c, t in zip(clients, tps)]
ratio = [float(r["ratio"] or 0) for r in rows]
p99 = [float(r["p99_ms"] or 0) for r in rows]
# The bare broadcaster's p99 (same run), when the CSV has it.
bare = [float(r.get("bare_p99_ms") or 0) for r in rows]

fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
x = range(len(rows))
axes[0].bar(x, deliveries, color="#3b82f6")
axes[0].set_title("deliveries per second")
axes[1].bar(x, ratio, color="#10b981")
axes[1].axhline(1.0, color="#6b7280", linestyle="--", linewidth=1)
axes[1].set_title("deliveries per server CPU-second / kernel floor")
if any(bare):
    w = 0.4
    axes[2].bar([i - w / 2 for i in x], p99, w, color="#f59e0b", label="rippy")
    axes[2].bar([i + w / 2 for i in x], bare, w, color="#9ca3af", label="bare broadcaster")
    axes[2].legend(fontsize=8)
else:
    axes[2].bar(x, p99, color="#f59e0b")
axes[2].set_yscale("log")
axes[2].set_title("tick-to-client latency p99 (ms)")
for ax in axes:
    ax.set_xticks(list(x))
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_xlabel("clients (tick)")
    ax.grid(axis="y", alpha=0.3)
fig.suptitle("rippy fan-out on 2 cores, load generator on the same machine")
fig.tight_layout()
fig.savefig(out, dpi=110)
print(f"wrote {out}")
