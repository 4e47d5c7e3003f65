#!/usr/bin/env python3
"""Summarise one bench/run results folder as Markdown (printed, and written to report.md)."""
import glob
import json
import os
import re
import sys

out = sys.argv[1]


def js(name):
    p = os.path.join(out, name)
    if not os.path.exists(p):
        return None
    with open(p) as f:
        return json.load(f)


def recap(name):
    """(hosts, changed, failed+unreachable) from the PLAY RECAP of a run's log."""
    p = os.path.join(out, name)
    if not os.path.exists(p):
        return None
    hosts, changed, bad = 0, 0, 0
    text = open(p, errors="replace").read()
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    part = text.split("PLAY RECAP")[-1] if "PLAY RECAP" in text else ""
    for m in re.finditer(r"^(?:\+[\d.]+ )?(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", part, re.M):
        hosts += 1
        changed += int(m.group(3))
        bad += int(m.group(4)) + int(m.group(5))
    return hosts, changed, bad


def slow_tasks(name, before, n=10):
    """The n slowest tasks from a timestamped log. provision, and Ansible with the free
    strategy, print a task's header with its results when the task is done: its duration is
    the gap before the header (with `before`). Ansible's linear strategy prints it when the
    task starts (gap after it)."""
    p = os.path.join(out, name)
    if not os.path.exists(p):
        return []
    heads = []
    for line in open(p, errors="replace"):
        line = re.sub(r"\x1b\[[0-9;]*m", "", line)
        m = re.match(r"^\+([\d.]+) ((?:TASK|RUNNING HANDLER|PLAY RECAP|PLAY)\b.*?)\s*\**$", line.rstrip())
        if m:
            heads.append((float(m.group(1)), m.group(2).strip(" *")))
    if before:
        gaps = [(t - heads[i - 1][0], h) for i, (t, h) in enumerate(heads) if i > 0]
    else:
        gaps = [(heads[i + 1][0] - t, h) for i, (t, h) in enumerate(heads[:-1])]
    gaps = [g for g in gaps if not g[1].startswith(("PLAY RECAP", "PLAY ["))]
    return sorted(gaps, reverse=True)[:n]


def ssh(name):
    """Per-host SSH activity (sshd log deltas): [(host, execs, sftp, logins)]."""
    p = os.path.join(out, name)
    if not os.path.exists(p):
        return None
    rows = []
    for line in open(p):
        f = line.split()
        if len(f) == 4:
            rows.append((f[0], int(f[1]), int(f[2]), int(f[3])))
    return rows


def fmt_t(r):
    return f"{r['wall_s']:.2f} s" if r else "–"


def fmt_m(r, key="peak_pss_mib"):
    return f"{r[key]:.0f} MiB" if r else "–"


def ratio(a, b):
    return f"{a / b:.3f}" if a and b else "–"


def others(r):
    return f"{r['others_cpu_s']} s" if r and "others_cpu_s" in r else "–"


def floor(r, base):
    """The wall time all the CPU the run used allows on this machine's cores (and vs `base`)."""
    if "others_cpu_s" not in r:
        return "–"  # measured before the hosts' CPU was recorded
    f = (r["cpu_s"] + r["others_cpu_s"]) / cores
    return f"{f:.2f} s ({f / base:.1f}x)"


lines = []
meta = js("meta.json") or {}
cores = int((re.match(r"(\d+) cores", meta.get("machine", "")) or [0, os.cpu_count()])[1])
lines.append(f"Results: `{out}`  ")
for k in ("date", "machine", "kernel", "provision", "ansible", "transport"):
    if k in meta:
        lines.append(f"{k}: {meta[k]}  ")
lines.append("")

phases = [("converge", "first converge (fresh hosts)"), ("nochange", "no-change re-run"), ("checkdiff", "`--check --diff` on converged hosts")]
if js("converge.provision.json") or js("converge.ansible.json"):
    n = (recap("converge.provision.log") or recap("converge.ansible.log") or (0,))[0]
    lines.append(f"### Reference stack, {n} fresh test host(s) per tool")
    lines.append("")
    lines.append("| run | provision | Ansible | time ratio | provision memory | Ansible memory | memory ratio | changed (p / A) |")
    lines.append("|---|---|---|---|---|---|---|---|")
    for ph, label in phases:
        p, a = js(f"{ph}.provision.json"), js(f"{ph}.ansible.json")
        rp, ra = recap(f"{ph}.provision.log"), recap(f"{ph}.ansible.log")
        ch = f"{rp[1] if rp else '–'} / {ra[1] if ra else '–'}"
        if (rp and rp[2]) or (ra and ra[2]):
            ch += f" (FAILED/UNREACHABLE: {rp[2] if rp else '–'} / {ra[2] if ra else '–'})"
        lines.append(f"| {label} | {fmt_t(p)} | {fmt_t(a)} | {ratio(p and p['wall_s'], a and a['wall_s'])} | {fmt_m(p)} | {fmt_m(a)} | {ratio(p and p['peak_pss_mib'], a and a['peak_pss_mib'])} | {ch} |")
    for ph, label in phases[:2]:
        o = js(f"{ph}.ordered.json")
        if o:
            ro = recap(f"{ph}.ordered.log")
            ch = f"{ro[1] if ro else '–'}" + (f" (FAILED/UNREACHABLE: {ro[2]})" if ro and ro[2] else "")
            lines.append(f"| {label}, provision with plays in Ansible's order (`--overlap-plays=false`) | {fmt_t(o)} | | "
                         f"{ratio(o['wall_s'], (js(f'{ph}.ansible.json') or {}).get('wall_s'))} | {fmt_m(o)} | | | {ch} |")
    r = js("nochange-russh.provision.json")
    if r:
        rp = recap("nochange-russh.provision.log")
        lines.append(f"| no-change, provision `--transport russh` | {fmt_t(r)} | | {ratio(r['wall_s'], (js('nochange.ansible.json') or {}).get('wall_s'))} | {fmt_m(r)} | | | {rp[1] if rp else '–'} |")
    lines.append("")
    lines.append("Time: wall clock of the whole command. Memory: peak of the summed PSS of the controller's process tree "
                 "(the tool, its workers and its ssh processes). CPU seconds (user+sys, whole tree):")
    lines.append("")
    lines.append("| run | provision CPU | Ansible CPU | test hosts' CPU under provision | under Ansible | provision max RSS (largest process) | Ansible max RSS (largest process) |")
    lines.append("|---|---|---|---|---|---|---|")
    for ph, label in phases:
        p, a = js(f"{ph}.provision.json"), js(f"{ph}.ansible.json")
        lines.append(f"| {label} | {p['cpu_s'] if p else '–'} s | {a['cpu_s'] if a else '–'} s | {others(p)} | {others(a)} | {fmt_m(p, 'max_single_rss_mib')} | {fmt_m(a, 'max_single_rss_mib')} |")
    lines.append("")
    lines.append("Test hosts' CPU: what the rest of the machine used during the run (the containers, "
                 "which share the controller's cores, doing the tool's work, plus background noise).")
    lines.append("")
    lines.append("### SSH round trips per host (sshd log of each host)")
    lines.append("")
    lines.append("| run | tool | host | exec channels | sftp channels | new SSH logins |")
    lines.append("|---|---|---|---|---|---|")
    for ph, label in phases + [("nochange-russh", "no-change (russh)")]:
        for tool in ("provision", "ordered", "ansible"):
            rows = ssh(f"{ph}.{tool}.ssh")
            for h, e, s, l in rows or []:
                lines.append(f"| {label} | {tool} | {h} | {e} | {s} | {l} |")
    lines.append("")
    if js("converge.provision.json") and js("converge.ansible.json"):
        lines.append("### Where the first converge spends its time (slowest tasks, all hosts together)")
        lines.append("")
        lines.append("| provision | s | Ansible | s |")
        lines.append("|---|---|---|---|")
        sp, sa = slow_tasks("converge.provision.log", True), slow_tasks("converge.ansible.log", True)
        for i in range(max(len(sp), len(sa))):
            a = sp[i] if i < len(sp) else (0, "")
            b = sa[i] if i < len(sa) else (0, "")
            lines.append(f"| {a[1]} | {a[0]:.1f} | {b[1]} | {b[0]:.1f} |")
        lines.append("")
    same = os.path.join(out, "same-end-state.txt")
    if os.path.exists(same):
        lines.append("### Same end state")
        lines.append("")
        lines.append("```")
        lines.append(open(same).read().rstrip())
        lines.append("```")
        lines.append("")

def series(prefix, tool="provision"):
    """A scaling series' runs, by host count: [(n, measurement, recap, wall of the first run)]."""
    runs = []
    for p in glob.glob(os.path.join(out, f"{prefix}-*.{tool}.json")):
        m = re.match(rf"{prefix}-(\d+)\.{tool}\.json$", os.path.basename(p))
        if m:
            runs.append((int(m.group(1)), js(os.path.basename(p)), recap(os.path.basename(p).replace(".json", ".log"))))
    runs.sort(key=lambda x: x[0])
    return [(n, r, rp, runs[0][1]["wall_s"]) for n, r, rp in runs]


scale = series("scale")
other_transport = "russh" if meta.get("transport", "openssh") == "openssh" else "openssh"
for prefix, transport in (("scale", meta.get("transport", "?")), ("scaleother", other_transport)):
    runs = scale if prefix == "scale" else series(prefix)
    if not runs:
        continue
    lines.append(f"### Scaling: no-change run, provision, `--transport {transport}`")
    lines.append("")
    lines.append("| hosts | wall | vs 1 host | peak PSS | controller CPU | test hosts' CPU | CPU floor (all CPU / cores) | execs per host (most) | changed |")
    lines.append("|---|---|---|---|---|---|---|---|---|")
    for n, r, rp, base in runs:
        execs = [e for _, e, _, _ in ssh(f"{prefix}-{n}.provision.ssh") or [] if e > 0]
        lines.append(f"| {n} | {r['wall_s']:.2f} s | {r['wall_s'] / base:.2f}x | {r['peak_pss_mib']:.0f} MiB | {r['cpu_s']} s | {others(r)} | {floor(r, base)} | "
                     f"{max(execs) if execs else '–'} | {rp[1] if rp else '–'} |")
    lines.append("")
ans = series("scale", "ansible")
if ans:
    lines.append("### Scaling: no-change run, Ansible, the same hosts")
    lines.append("")
    w = js("scale-warmup.ansible.json")
    if w:
        rw = recap("scale-warmup.ansible.log")
        lines.append(f"After an untimed first pass of Ansible over the largest set (hosts provision converged; {w['wall_s']:.1f} s, "
                     f"changed {rw[1] if rw else '?'}, failed/unreachable {rw[2] if rw else '?'}), its persistent ssh masters open.")
        lines.append("")
    lines.append("| hosts | wall | vs 1 host | provision / Ansible | peak PSS | controller CPU | test hosts' CPU | CPU floor (all CPU / cores) | execs per host (most) | changed |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|")
    pw = {n: r["wall_s"] for n, r, _, _ in scale}
    for n, r, rp, base in ans:
        rows = [e for _, e, _, _ in ssh(f"scale-{n}.ansible.ssh") or [] if e > 0]
        pr = f"{pw[n] / r['wall_s']:.3f} (1/{r['wall_s'] / pw[n]:.0f})" if n in pw else "–"
        lines.append(f"| {n} | {r['wall_s']:.2f} s | {r['wall_s'] / base:.2f}x | {pr} | {r['peak_pss_mib']:.0f} MiB | {r['cpu_s']} s | {others(r)} | "
                     f"{floor(r, base)} | {max(rows) if rows else '–'} | {rp[1] if rp else '–'} |")
    lines.append("")
c = js("scale-converge.provision.json")
if scale and c:
    rp = recap("scale-converge.provision.log")
    lines.append(f"(First converge of all {rp[0] if rp else '?'} hosts at once: {c['wall_s']:.1f} s, peak PSS {c['peak_pss_mib']:.0f} MiB, failed/unreachable {rp[2] if rp else '?'}.)")
    lines.append("")

sim = series("simscale")
if sim:
    lines.append(f"### Scaling on simulated hosts with their own CPUs: no-change run, provision, `--transport {meta.get('transport', '?')}`")
    lines.append("")
    lines.append("The same series against bench/fleet hosts that answer each command after the time the real "
                 "host took to answer it (recorded), without using the machine's cores.")
    lines.append("")
    lines.append("| hosts | wall | vs 1 host | peak PSS | controller CPU | changed | failed/unreachable |")
    lines.append("|---|---|---|---|---|---|---|")
    for n, r, rp, base in sim:
        lines.append(f"| {n} | {r['wall_s']:.2f} s | {r['wall_s'] / base:.2f}x | {r['peak_pss_mib']:.0f} MiB | {r['cpu_s']} s | {rp[1] if rp else '–'} | {rp[2] if rp else '–'} |")
    lines.append("")

fleet = sorted(glob.glob(os.path.join(out, "fleet-*.provision.json")))
if fleet:
    lines.append("### Simulated fleet (bench/fleet: russh servers replaying a converged host), `--transport russh`")
    lines.append("")
    lines.append("| run | hosts | wall | controller max RSS | controller CPU | execs per connection | replay misses | changed | failed/unreachable |")
    lines.append("|---|---|---|---|---|---|---|---|---|")
    for p in fleet:
        name = os.path.basename(p)[: -len(".provision.json")]
        r = js(os.path.basename(p))
        st = js(f"{name}.fleet.json") or {}
        rp = recap(f"{name}.provision.log")
        epc = ", ".join(f"{k}: {v}" for k, v in (st.get("execs_per_connection") or {}).items())
        lines.append(f"| {name} | {rp[0] if rp else '?'} | {r['wall_s']:.2f} s | {r['max_single_rss_mib']:.0f} MiB | {r['cpu_s']} s | {epc} | {st.get('misses', '?')} | {rp[1] if rp else '–'} | {rp[2] if rp else '–'} |")
    lines.append("")

# Issue 5's targets, checked against this run's numbers.
tg = []
def target(label, ok, detail):
    tg.append(f"| {label} | {detail} | {'met' if ok else 'MISSED'} |")
p, a = js("nochange.provision.json"), js("nochange.ansible.json")
if p and a:
    r = p["wall_s"] / a["wall_s"]
    target("no-change: at most 1/20 of Ansible's time", r <= 0.05, f"{p['wall_s']:.2f} s vs {a['wall_s']:.2f} s = {r:.3f}")
rows = ssh("nochange.provision.ssh")
if rows:
    worst = max(e for _, e, _, _ in rows)
    target("no-change: at most 2 round trips per host", worst <= 2, ", ".join(f"{h}: {e}" for h, e, _, _ in rows))
c = js("checkdiff.provision.json")
if p and c:
    target("`--check --diff` about as fast as no-change", c["wall_s"] <= 1.25 * p["wall_s"], f"{c['wall_s']:.2f} s vs {p['wall_s']:.2f} s")
p1, a1 = js("converge.provision.json"), js("converge.ansible.json")
if p1 and a1:
    r = p1["wall_s"] / a1["wall_s"]
    target("first converge: at most 0.6 of Ansible's time", r <= 0.6, f"{p1['wall_s']:.1f} s vs {a1['wall_s']:.1f} s = {r:.2f}")
    o1 = js("converge.ordered.json")
    if o1:
        r = o1["wall_s"] / a1["wall_s"]
        target("first converge, plays in Ansible's order (`--overlap-plays=false`): at most 0.6", r <= 0.6, f"{o1['wall_s']:.1f} s vs {a1['wall_s']:.1f} s = {r:.2f}")
s1, s30 = js("scale-1.provision.json"), js("scale-30.provision.json")
if s1 and s30:
    r = s30["wall_s"] / s1["wall_s"]
    target("30 hosts no-change: under 3x the 1-host time (real test hosts, sharing the controller's cores)", r < 3,
           f"{s30['wall_s']:.2f} s vs {s1['wall_s']:.2f} s = {r:.2f}x (CPU floor {floor(s30, s1['wall_s'])})")
    target("30 hosts no-change: controller memory under 100 MiB", s30["peak_pss_mib"] < 100, f"{s30['peak_pss_mib']:.0f} MiB PSS")
o1, o30 = js("scaleother-1.provision.json"), js("scaleother-30.provision.json")
if o1 and o30:
    r = o30["wall_s"] / o1["wall_s"]
    target(f"30 hosts no-change: under 3x the 1-host time (real test hosts, `--transport {other_transport}`)", r < 3,
           f"{o30['wall_s']:.2f} s vs {o1['wall_s']:.2f} s = {r:.2f}x (CPU floor {floor(o30, o1['wall_s'])})")
m1, m30 = js("simscale-1.provision.json"), js("simscale-30.provision.json")
if m1 and m30:
    r = m30["wall_s"] / m1["wall_s"]
    target("30 hosts no-change: under 3x the 1-host time (simulated hosts with their own CPUs)", r < 3, f"{m30['wall_s']:.2f} s vs {m1['wall_s']:.2f} s = {r:.2f}x")
    target("30 simulated hosts: controller memory under 100 MiB", m30["peak_pss_mib"] < 100, f"{m30['peak_pss_mib']:.0f} MiB PSS")
for f in sorted(glob.glob(os.path.join(out, "fleet-*-nochange.provision.json"))):
    r = js(os.path.basename(f))
    name = os.path.basename(f)[: -len(".provision.json")]
    target(f"{name}: under 10 s and 300 MiB", r["wall_s"] < 10 and r["max_single_rss_mib"] < 300, f"{r['wall_s']:.2f} s, {r['max_single_rss_mib']:.0f} MiB")
if tg:
    lines.append("### Targets (issue 5)")
    lines.append("")
    lines.append("| target | this run | |")
    lines.append("|---|---|---|")
    lines.extend(tg)
    lines.append("")

text = "\n".join(lines) + "\n"
with open(os.path.join(out, "report.md"), "w") as f:
    f.write(text)
print(text)
