#!/usr/bin/env python3
"""Renders scripts/bench-peers.sh's results (TSV) as docs/benchmarks.md.

results.tsv: row side rep value cpu_per_op p50_us p99_us errors
commands.tsv: row side command
"""
import argparse
import datetime
import os
import shutil
import statistics
import subprocess
import tempfile

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
    ("idle", "RSS per idle authenticated session; p99: one ping on each in turn", "KiB", False,
     ""),
    ("hash", "`hash sha256` of a cached file over mTLS, whole `opsctl` process", "MB/s", True,
     "µs/MiB"),
    ("oneshot", "one command per process, `opsctl run true` (session cache warm)", "cmd/s", True,
     "µs/cmd"),
    ("oneshot_fresh", "one command per process, full handshake (`opsctl --no-resume`)", "cmd/s",
     True, "µs/cmd"),
    ("stream_opsctl", "stream a big file (`run cat`), read by `opsctl`", "MB/s", True, "µs/MiB"),
    ("fanout50", "fan-out of `run true` to 50 hosts, 50 at once", "hosts/s", True, "µs/host"),
]

# Short names for the chart's axis, in ROWS order.
CHART_LABELS = {
    "ping1": "ping x1",
    "ping50": "ping x50",
    "ping50x16": "ping x50 pipelined",
    "handshake": "full handshake",
    "handshake_resumed": "resumed handshake",
    "stream": "stream run cat",
    "idle": "idle session RSS",
    "hash": "hash sha256",
    "oneshot": "1 command/process",
    "oneshot_fresh": "1 command, fresh",
    "stream_opsctl": "stream to opsctl",
    "fanout50": "fan-out 50",
}


def draw_chart(advantages, svg_path):
    """Draws opsagent's advantage over each peer (ratio where higher is better, inverted where
    lower is better) as bars on a log scale with the parity line at 1. Needs gnuplot."""
    if not advantages or shutil.which("gnuplot") is None:
        return False
    with tempfile.TemporaryDirectory() as tmp:
        dat = os.path.join(tmp, "ratios.dat")
        with open(dat, "w") as f:
            for i, (label, peer, adv) in enumerate(advantages):
                f.write(f'{i}\t"{label}\\n(vs {peer})"\t{adv:.4f}\n')
        top = max(2.0, max(a for _, _, a in advantages) * 1.5)
        bottom = min(0.5, min(a for _, _, a in advantages) / 1.5)
        script = f"""set terminal svg size 900,460 font 'sans,12' noenhanced background rgb 'white'
set output '{svg_path}'
set title "opsagent / peer, same client, same run (above 1: opsagent better)"
set logscale y
set yrange [{bottom}:{top}]
set ylabel "advantage (x, log scale)"
set ytics ("0.05" 0.05, "0.1" 0.1, "0.2" 0.2, "0.5" 0.5, "1" 1, "2" 2, "5" 5, "10" 10, "20" 20)
set bmargin 4
set style fill solid 0.8 border -1
set boxwidth 0.6
set grid ytics
set key off
set xtics nomirror font ',10'
set xrange [-0.6:{len(advantages) - 0.4}]
set arrow from -0.6,1 to {len(advantages) - 0.4},1 nohead dt 2 lw 2 lc rgb 'black'
plot '{dat}' using 1:3:xtic(2) with boxes lc rgb '#3572a5', \
     '' using 1:3:(sprintf('%.2f', $3)) with labels offset 0,0.8
"""
        gp = os.path.join(tmp, "chart.gp")
        with open(gp, "w") as f:
            f.write(script)
        subprocess.run(["gnuplot", gp], check=True)
    return True


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
        d = data.setdefault((row, side),
                            {"v": [], "cpu": [], "p50": [], "p99": [], "err": 0, "client": []})
        d["v"].append(float(f[3]))
        d["cpu"].append(float(f[4]))
        d["p50"].append(float(f[5]))
        d["p99"].append(float(f[6]))
        d["err"] += int(f[7])
        if len(f) > 8:  # whole-process rows: the client's CPU per operation
            d["client"].append(float(f[8]))
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
               "children: the command, `opsagent-guard`, sshd's session and shell). Client CPU "
               "is given for the rows that run whole client processes (`opsctl`, `ssh`, "
               "`parallel-ssh`, `openssl dgst`), start-up included.")
    out.append("")
    out.append(f"Versions: {a.versions}.  ")
    out.append(f"Parameters: {a.params}.")
    out.append("")
    svg_name = os.path.splitext(os.path.basename(a.out))[0] + ".svg"
    chart_at = len(out)
    advantages = []
    out.append("| workload | opsagent | peer | peer's | ratio opsagent/peer | server CPU opsagent / peer | client CPU opsagent / peer | p99 latency µs opsagent / peer |")
    out.append("|---|---|---|---|---|---|---|---|")
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
            if ratio > 0:
                advantages.append((CHART_LABELS.get(row, row), peer_side,
                                   ratio if higher else 1 / ratio))
        else:
            cell_p, ratio_s = "not measured", "-"
        if cpu_unit:
            co = statistics.median(ours["cpu"])
            cp = statistics.median(peer["cpu"]) if peer else 0
            cpu_s = f"{fmt(co)} / {fmt(cp)} {cpu_unit}" if peer else f"{fmt(co)} {cpu_unit}"
        else:
            cpu_s = "-"
        if ours["client"]:
            ko = statistics.median(ours["client"])
            kp = statistics.median(peer["client"]) if peer and peer["client"] else None
            client_s = f"{fmt(ko)} / {fmt(kp)} {cpu_unit}" if kp is not None else f"{fmt(ko)} {cpu_unit}"
        else:
            client_s = "-"
        if row.startswith("ping") or row.startswith("handshake") or row == "idle":
            lat = f"{fmt(statistics.median(ours['p99']))} / " + (
                fmt(statistics.median(peer["p99"])) if peer else "-")
        else:
            lat = "-"
        # Say whose runs failed (a client exiting non-zero): a failing side's number is suspect.
        failed = [f"{side}: {d['err']} of {len(d['v'])} runs exited non-zero"
                  for side, d in (("opsagent", ours), (peer_side, peer)) if d and d["err"]]
        if failed:
            ratio_s += f" ({'; '.join(failed)})"
        out.append(f"| {title} | {cell_o} | {peer_side or '-'} | {cell_p} | {ratio_s} | {cpu_s} | {client_s} | {lat} |")
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
    if draw_chart(advantages, os.path.join(os.path.dirname(os.path.abspath(a.out)), svg_name)):
        out[chart_at:chart_at] = [f"![opsagent's advantage over each peer]({svg_name})", ""]
    with open(a.out, "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
