#!/usr/bin/env python3
"""Renders scripts/bench-peers.sh's results (TSV) as docs/benchmarks.md.

results.tsv: row side rep value cpu_per_op p50_us p99_us errors
commands.tsv: row side command
"""
import argparse
import datetime
import statistics

ROWS = [
    # row, title, unit, higher is better, CPU unit
    ("ping1", "`ping`, 1 connection", "req/s", True, "µs/req"),
    ("ping50", "`ping`, 50 connections", "req/s", True, "µs/req"),
    ("ping50x16", "`ping`, 50 connections pipelined 16 deep", "req/s", True, "µs/req"),
    ("handshake", "full mTLS 1.3 handshake + one request, serial", "conn/s", True, "µs/conn"),
    ("handshake_resumed", "resumed TLS 1.3 handshake (ticket) + one request, serial", "conn/s",
     True, "µs/conn"),
    ("stream", "stream a big file (`run cat`), read by `openssl s_client`", "MB/s", True,
     "µs/MiB"),
    ("idle", "RSS per idle authenticated session", "KiB", False, ""),
]


def fmt(v):
    if v >= 100:
        return f"{v:,.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("commands")
    ap.add_argument("out")
    ap.add_argument("--versions", default="")
    ap.add_argument("--params", default="")
    ap.add_argument("--quick", default="0")
    ap.add_argument("--label", default="")
    ap.add_argument("--ssh", default="0")
    a = ap.parse_args()

    data = {}
    for line in open(a.results):
        f = line.rstrip("\n").split("\t")
        if len(f) < 8:
            continue
        row, side = f[0], f[1]
        d = data.setdefault((row, side), {"v": [], "cpu": [], "p50": [], "p99": [], "err": 0})
        d["v"].append(float(f[3]))
        d["cpu"].append(float(f[4]))
        d["p50"].append(float(f[5]))
        d["p99"].append(float(f[6]))
        d["err"] += int(f[7])
    cmds = {}
    for line in open(a.commands):
        f = line.rstrip("\n").split("\t")
        if len(f) == 3:
            cmds[(f[0], f[1])] = f[2]

    out = []
    title = "# Benchmarks: opsagent against peers, same client, same run"
    out.append(title)
    out.append("")
    out.append("Written by `scripts/bench-peers.sh" + (" --quick" if a.quick == "1" else "") +
               "` on " + datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC") +
               (f" ({a.label})" if a.label else "") + ". Not a test: absolute numbers depend "
               "on the machine and its load (a shared 2-core machine here); quote the ratios. "
               "Each cell is the median of 3 runs with the sides alternating, min-max in "
               "brackets. Server CPU per operation is utime+stime from `/proc/PID/stat` of the "
               "server process over the run (for the streaming row with its waited-for "
               "children: the command, `opsagent-guard`, sshd's session and shell).")
    out.append("")
    out.append(f"Versions: {a.versions}.  ")
    out.append(f"Parameters: {a.params}.")
    out.append("")
    out.append("| workload | opsagent | peer | peer's | ratio opsagent/peer | server CPU opsagent / peer | p99 latency µs opsagent / peer |")
    out.append("|---|---|---|---|---|---|---|")
    for row, title, unit, higher, cpu_unit in ROWS:
        ours = data.get((row, "opsagent"))
        peer_side = next((s for (r, s) in data if r == row and s != "opsagent"), None)
        if ours is None:
            continue
        if peer_side is None:
            peer = None
        else:
            peer = data[(row, peer_side)]
        mo = statistics.median(ours["v"])
        cell_o = f"{fmt(mo)} {unit} ({fmt(min(ours['v']))}-{fmt(max(ours['v']))})"
        if peer:
            mp = statistics.median(peer["v"])
            cell_p = f"{fmt(mp)} {unit} ({fmt(min(peer['v']))}-{fmt(max(peer['v']))})"
            ratio = mo / mp if mp else 0
            ratio_s = f"**{ratio:.2f}**" + ("" if higher else " (lower is better)")
        else:
            cell_p, ratio_s = "not measured", "-"
        if cpu_unit:
            co = statistics.median(ours["cpu"])
            cp = statistics.median(peer["cpu"]) if peer else 0
            cpu_s = f"{fmt(co)} / {fmt(cp)} {cpu_unit}" if peer else f"{fmt(co)} {cpu_unit}"
        else:
            cpu_s = "-"
        if row.startswith("ping") or row.startswith("handshake"):
            lat = f"{fmt(statistics.median(ours['p99']))} / " + (
                fmt(statistics.median(peer["p99"])) if peer else "-")
        else:
            lat = "-"
        errs = ours["err"] + (peer["err"] if peer else 0)
        if errs:
            ratio_s += f" ({errs} errors)"
        out.append(f"| {title} | {cell_o} | {peer_side or '-'} | {cell_p} | {ratio_s} | {cpu_s} | {lat} |")
    out.append("")
    if a.ssh != "1":
        out.append("The streaming row has no peer: openssh-server is not installed, so no "
                   "local sshd ran.")
        out.append("")
    out.append("## Exact commands")
    out.append("")
    out.append("Certificates from `scripts/gen-dev-certs.sh` (ECDSA P-256); every client "
               "presents `alice.crt`. `opsagent-loadgen` is `bench/loadgen.cpp` "
               "(`cmake --build build/release --target opsagent-loadgen`); it also passes "
               "`--cert alice.crt --key alice.key --ca ca.crt` and `--duration`. Servers:")
    out.append("")
    out.append("```")
    out.append("opsagent --config agent.yaml   # release build; policy: ping, run cat-big; audit on")
    out.append("redis-server --port 0 --tls-port PORT --bind 127.0.0.1 --tls-cert-file server.crt "
               "--tls-key-file server.key --tls-ca-cert-file ca.crt --tls-auth-clients yes "
               "--tls-protocols TLSv1.3 --save '' --appendonly no --maxclients 10000")
    out.append("openssl s_server -quiet -rev -accept 127.0.0.1:PORT -tls1_3 -no_ticket "
               "-cert server.crt -key server.key -CAfile ca.crt -Verify 1 -verify_return_error")
    if a.ssh == "1":
        out.append("sshd -D -e -f sshd_config   # 127.0.0.1 only, Ciphers aes256-gcm@openssh.com, key auth")
    out.append("```")
    out.append("")
    out.append("| row | side | client command |")
    out.append("|---|---|---|")
    for (row, side), cmd in cmds.items():
        out.append(f"| {row} | {side} | `{cmd}` |")
    out.append("")
    out.append("Reproduce: `scripts/bench-peers.sh` (about 8 minutes) or "
               "`scripts/bench-peers.sh --quick` (about 4 minutes); raw results beside this "
               "file in `benchmarks.tsv`.")
    with open(a.out, "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
