#!/usr/bin/env python3
"""Run a command and measure it as the controller of a provisioning run.
Its output goes to the log, each line prefixed with the seconds since the start.

    measure.py --json OUT --log LOG -- CMD...

Wall time (spawn to exit), CPU time (user+sys of the whole process tree), the CPU time the
rest of the machine used meanwhile (others_cpu_s: the local test hosts' work), and controller
memory: the peak over time of the summed PSS (proportional set size: shared pages are split
between the processes that share them, so Ansible's forked workers are not counted many
times) and of the summed RSS of every process of the tree, sampled every 50 ms, plus the
largest single process's max RSS (getrusage). The measurer makes itself a child
subreaper, so daemonising children (ssh ControlPersist masters) stay in the tree and are
counted while the command runs.
"""
import ctypes
import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time

PR_SET_CHILD_SUBREAPER = 36


def children_map():
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat", "rb") as f:
                s = f.read()
            ppid = int(s[s.rindex(b")") + 2:].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        kids.setdefault(ppid, []).append(int(d))
    return kids


def tree(root, kids):
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def mem(pid):
    pss = rss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1])
                elif line.startswith("Rss:"):
                    rss = int(line.split()[1])
    except OSError:
        pass
    return pss, rss


def machine_cpu():
    """CPU seconds the whole machine spent busy (user, nice, system, irq, softirq) so far."""
    with open("/proc/stat") as f:
        f = f.readline().split()
    ticks = os.sysconf("SC_CLK_TCK")
    return sum(int(f[i]) for i in (1, 2, 3, 6, 7)) / ticks


def main():
    args = sys.argv[1:]
    out_json = log = None
    while args and args[0] != "--":
        if args[0] == "--json":
            out_json = args[1]
            args = args[2:]
        elif args[0] == "--log":
            log = args[1]
            args = args[2:]
        else:
            sys.exit(f"measure.py: unknown option {args[0]}")
    cmd = args[1:]
    if not cmd:
        sys.exit("usage: measure.py --json OUT --log LOG -- CMD...")
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    logf = open(log, "wb") if log else None
    me = os.getpid()
    t0 = time.monotonic()
    m0 = machine_cpu()
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    # Every output line goes to the log prefixed with the seconds since the start ("+12.345 "),
    # so the report can tell which tasks took the time.
    def pump():
        for line in iter(child.stdout.readline, b""):
            if logf:
                logf.write(b"+%.3f " % (time.monotonic() - t0) + line)
                logf.flush()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    peak_pss = peak_rss = peak_procs = 0
    status = None
    while True:
        kids = children_map()
        procs = [p for p in tree(me, kids) if p != me]
        pss = rss = 0
        for p in procs:
            a, b = mem(p)
            pss += a
            rss += b
        peak_pss, peak_rss = max(peak_pss, pss), max(peak_rss, rss)
        peak_procs = max(peak_procs, len(procs))
        r = child.poll()
        if r is not None:
            status = r
            break
        time.sleep(0.05)
    wall = time.monotonic() - t0
    machine = machine_cpu() - m0
    reader.join(timeout=5)
    # Reap orphans that already exited (zombies reparented to us); leave live daemons alone.
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    me_ru = resource.getrusage(resource.RUSAGE_SELF)
    cpu = ru.ru_utime + ru.ru_stime
    res = {
        "cmd": cmd,
        "rc": status,
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        # Everything else the machine did meanwhile: on the bench, the test hosts (containers
        # on the same cores) answering this run, plus background noise.
        "others_cpu_s": round(max(0.0, machine - cpu - (me_ru.ru_utime + me_ru.ru_stime)), 3),
        "peak_pss_mib": round(peak_pss / 1024, 1),
        "peak_rss_mib": round(peak_rss / 1024, 1),
        "max_single_rss_mib": round(ru.ru_maxrss / 1024, 1),
        "peak_processes": peak_procs,
    }
    if out_json:
        with open(out_json, "w") as f:
            json.dump(res, f)
    print(json.dumps(res))
    # Daemons left behind (ssh ControlPersist masters) now belong to init again when we exit.
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    sys.exit(0)


if __name__ == "__main__":
    main()
