#!/usr/bin/env python3
"""session-svc benchmarks against fakewa, through the gateway.

    session_bench.py <bin-dir> [runs=10] [sessions=1,5,10]
    session_bench.py <bin-dir> --flags        # Chromium flag sets compared

The environment passes through to the services: SPARE_BROWSERS=1
measures connects with a pre-warmed browser (the default, 0, without). GAP_S=<seconds> pauses
between one latency run's disconnect and the next connect (default 0:
back to back, which gives a spare the least time to start). PHASES=1
adds the median of each page start phase from session-svc's debug log.

Default mode starts the whole stack on free ports and reports:
  - POST /connect -> status qr, and scan -> status ready: median (and
    min/max) over `runs` users;
  - PSS per ready session at each count in `sessions`: the sum of Pss from
    /proc/<pid>/smaps_rollup over every process running on a profile under
    SESSIONS_DIR, divided by the number of sessions.
--flags launches Chromium directly (the same pipe and page, logged in via
fakewa) with each flag set of FLAG_SETS and reports PSS of its tree and the
time to the page's QR; session-svc's own flags are the "session-svc" row.
Not a test: numbers depend on the machine; run on an idle one.
"""

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "tests", "integration"))
import stack  # noqa: E402
from stack import http, wait_until  # noqa: E402


def spare_names(sessions_dir):
    """Spare browsers' directories under sessions_dir that no user's
    profile links to (not adopted yet)."""
    try:
        names = os.listdir(sessions_dir)
    except OSError:
        return set()
    linked = set()
    for n in names:
        p = os.path.join(sessions_dir, n)
        if os.path.islink(p):
            linked.add(os.readlink(p))
    return {n for n in names if n.startswith(".spare-") and n not in linked}


def tree_mem_kb(sessions_dir, spare=None):
    """(Pss, private = USS, process count, process types) over every
    process running on a profile under sessions_dir. Spare browsers
    (session-svc's pre-warmed ones, not adopted) are left out; pass a dict
    as spare to get their (pss, uss, procs) in it."""
    pss, uss, procs, types = 0, 0, 0, {}
    needle = ("--user-data-dir=" + sessions_dir).encode()
    spares = {os.path.join(sessions_dir, n).encode()
              for n in spare_names(sessions_dir)}
    if spare is not None:
        spare.update(pss=0, uss=0, procs=0)
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                cmd = f.read()
            if needle not in cmd:
                continue
            # Child processes rewrite their cmdline into one line.
            m = re.search(rb"--user-data-dir=([^\0 ]+)", cmd)
            is_spare = m is not None and m.group(1) in spares
            with open("/proc/%s/smaps_rollup" % d) as f:
                roll = f.read()
        except OSError:
            continue
        m = re.search(r"^Pss:\s+(\d+) kB", roll, re.M)
        if not m:
            continue
        priv = sum(int(x) for x in re.findall(
            r"^Private_(?:Clean|Dirty):\s+(\d+) kB", roll, re.M))
        if is_spare:
            if spare is not None:
                spare["pss"] += int(m.group(1))
                spare["uss"] += priv
                spare["procs"] += 1
            continue
        pss += int(m.group(1))
        uss += priv
        procs += 1
        t = re.search(rb"--type=([a-z-]+)", cmd)
        t = t.group(1).decode() if t else "browser"
        if b"--utility-sub-type=" in cmd:
            t += ":" + re.search(rb"--utility-sub-type=([A-Za-z.]+)",
                                 cmd).group(1).decode().split(".")[0]
        if b"top-chrome" in cmd:
            t += ":webui"
        types[t] = types.get(t, 0) + 1
    return pss, uss, procs, types


# Seconds between one user's disconnect and the next connect (GAP_S):
# 0 is back to back, the worst case for a pre-warmed browser.
GAP_S = float(os.environ.get("GAP_S", "0"))
# PHASES=1: session-svc logs at debug level and the latency runs' page
# start is broken down from its timing lines (adapter.c, "... after N ms":
# since the browser's launch, or a spare's adoption).
PHASES = os.environ.get("PHASES", "0") == "1"


def print_phases(log_path):
    """Median ms of each start phase over the latency users' launches."""
    phases = {}
    try:
        with open(log_path, errors="replace") as f:
            for line in f:
                m = re.search(r"user (lat-\d+): ([A-Za-z. ]+?) after (\d+) ms",
                              line)
                if m:
                    phases.setdefault(m.group(2), []).append(int(m.group(3)))
    except OSError:
        return
    for name, v in sorted(phases.items(), key=lambda x: statistics.median(
            x[1])):
        print("  phase %-22s median %5d ms (min %d, max %d, n=%d)"
              % (name, statistics.median(v), min(v), max(v), len(v)))


def status(st, tok):
    return http("GET", st.gw("/status"), tok).json or {}


def link(st, user, phone):
    tok = stack.token(user)
    t0 = time.time()
    r = http("POST", st.gw("/connect"), tok)
    assert r.status in (200, 202), r
    wait_until("qr", lambda: status(st, tok).get("status") == "qr", 60, 0.02)
    t_qr = time.time() - t0
    for _ in range(20):
        pages = http("GET", st.fake("/_fake/pages")).json
        refs = [p["ref"] for p in pages if p.get("ref") and not p.get("phone")]
        t1 = time.time()
        if refs and http("POST", st.fake("/_fake/scan"), body={
                "ref": refs[-1], "phone": phone,
                "name": "Bench " + user}).status == 200:
            break
        time.sleep(0.2)
    wait_until("ready", lambda: status(st, tok).get("status") == "ready", 60,
               0.02)
    return tok, t_qr, time.time() - t1


def bench_stack(bindir, runs, counts):
    work = tempfile.mkdtemp(prefix="session_bench.")
    env = {"LOG_LEVEL": "debug" if PHASES else "warn",
           "RATE_LIMIT_RPS": "1000",
           "RATE_LIMIT_BURST": "2000", "FAKEWA_REF_INTERVAL_MS": "20000",
           "MAX_SESSIONS": "50"}
    st = stack.Stack(bindir, work, env)
    st.start_all(fakewa=True)
    try:
        qr, ready = [], []
        for i in range(runs):
            tok, a, b = link(st, "lat-%d" % i, "4179100%04d" % i)
            qr.append(a)
            ready.append(b)
            r = http("POST", st.gw("/disconnect"), tok, timeout=30)
            assert r.status == 200, r
            time.sleep(GAP_S)
        print("connect -> qr:   median %.2f s (min %.2f, max %.2f, n=%d)"
              % (statistics.median(qr), min(qr), max(qr), runs))
        print("scan -> ready:   median %.2f s (min %.2f, max %.2f, n=%d)"
              % (statistics.median(ready), min(ready), max(ready), runs))
        if PHASES:
            print_phases(os.path.join(work, "session-svc.log"))
        n = 0
        for want in counts:
            while n < want:
                link(st, "mem-%d" % n, "4179200%04d" % n)
                n += 1
            time.sleep(5)  # let the pages settle after their sync
            sp = {}
            kb, uss, procs, _ = tree_mem_kb(st.env["SESSIONS_DIR"], sp)
            print("%2d ready sessions: PSS %.0f MiB in all, %.0f MiB per "
                  "session (private %.0f MiB per session, %d processes); "
                  "spare browsers apart: PSS %.0f MiB, private %.0f MiB, "
                  "%d processes"
                  % (n, kb / 1024, kb / 1024 / n, uss / 1024 / n, procs,
                     sp["pss"] / 1024, sp["uss"] / 1024, sp["procs"]))
    finally:
        st.stop_all()
        shutil.rmtree(work, ignore_errors=True)


# ---- flag sets, Chromium driven directly ----

BASE = ["--headless=new", "--remote-debugging-pipe", "--no-first-run",
        "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--disable-dev-shm-usage", "--no-sandbox",
        "--disable-blink-features=AutomationControlled"]
FLAG_SETS = [
    ("DESIGN §7 only", []),
    ("+ --disable-gpu", ["--disable-gpu"]),
    ("+ --renderer-process-limit=1", ["--renderer-process-limit=1"]),
    ("+ --disable-features=(spare renderer, BFCache, ...)",
     ["--disable-features=Translate,MediaRouter,OptimizationHints,"
      "SpareRendererForSitePerProcess,BackForwardCache"]),
    ("+ --disable-features=WebUIOmniboxPopup,WebUIOmniboxAimPopup",
     ["--disable-features=WebUIOmniboxPopup,WebUIOmniboxAimPopup"]),
    ("+ --enable-features=NetworkServiceInProcess2",
     ["--enable-features=NetworkServiceInProcess2"]),
    ("+ --disable-crashpad-for-testing", ["--disable-crashpad-for-testing"]),
    ("+ --js-flags=--max-old-space-size=512",
     ["--js-flags=--max-old-space-size=512"]),
    ("+ --single-process", ["--single-process"]),
    ("session-svc (all of browser.c)", None),
]


def session_svc_flags():
    src = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                            "session-svc", "browser.c")).read()
    body = src.split("base_flags[] = {", 1)[1].split("};", 1)[0]
    # One entry per ",\n"; adjacent literals within an entry concatenate.
    out = []
    for entry in body.split(",\n"):
        parts = re.findall(r'"([^"]*)"', entry)
        if parts:
            out.append("".join(parts))
    # This bench opens the page from the command line; session-svc creates
    # it over DevTools instead (adapter.c), which needs no startup window.
    return [f for f in out if f != "--no-startup-window"]


def chromium_run(exe, flags, url, prof, fake_port, phone):
    r3, w3 = os.pipe()
    r4, w4 = os.pipe()

    def pre():
        a, b = os.dup(r3), os.dup(w4)
        os.dup2(a, 3)
        os.dup2(b, 4)
        os.setsid()

    t0 = time.time()
    p = subprocess.Popen([exe] + flags + ["--user-data-dir=" + prof, url],
                         preexec_fn=pre, close_fds=False,
                         stderr=subprocess.DEVNULL)
    os.close(r3)
    os.close(w4)
    # Wait until fakewa shows a page with a QR, then scan it.
    base = "http://127.0.0.1:%d" % fake_port
    ref = wait_until("page", lambda: [
        x["ref"] for x in http("GET", base + "/_fake/pages").json
        if x.get("ref") and not x.get("phone")], 60, 0.05)[-1]
    t_qr = time.time() - t0
    http("POST", base + "/_fake/scan", body={"ref": ref, "phone": phone,
                                             "name": "Flags"})
    wait_until("login", lambda: [
        x for x in http("GET", base + "/_fake/pages").json
        if x.get("phone") == phone], 60, 0.1)
    time.sleep(6)
    kb, uss, procs, types = tree_mem_kb(prof)
    os.close(w3)  # Chromium exits on EOF
    p.wait(20)
    os.close(r4)
    return t_qr, kb, uss, procs, types


def bench_flags(bindir, repeat=3):
    work = tempfile.mkdtemp(prefix="flags_bench.")
    port = stack.free_port()
    env = dict(os.environ, FAKEWA_PORT=str(port), LOG_LEVEL="warn")
    fw = subprocess.Popen([os.path.join(bindir, "fakewa")], env=env,
                          stderr=subprocess.DEVNULL)
    exe = shutil.which("chromium") or "/usr/bin/chromium"
    try:
        wait_until("fakewa", lambda: http(
            "GET", "http://127.0.0.1:%d/_fake/pages" % port).status == 200)
        ours = session_svc_flags()
        n = 0
        for name, extra in FLAG_SETS:
            flags = (BASE + extra) if extra is not None else \
                [f for f in ours] + ["--no-sandbox"]
            res = []
            for _ in range(repeat):
                prof = os.path.join(work, "p%d" % n)
                n += 1
                res.append(chromium_run(exe, flags, "http://127.0.0.1:%d/"
                                        % port, prof, port, "4179300%04d" % n))
            kb = statistics.median(r[1] for r in res)
            uss = statistics.median(r[2] for r in res)
            print("%-52s PSS %4.0f MiB  private %4.0f MiB  processes %d  "
                  "page QR after %.2f s  %s"
                  % (name, kb / 1024, uss / 1024, res[0][3],
                     statistics.median(r[0] for r in res),
                     json.dumps(res[0][4], sort_keys=True)))
    finally:
        fw.terminate()
        fw.wait()
        shutil.rmtree(work, ignore_errors=True)


def main():
    bindir = sys.argv[1]
    if "--flags" in sys.argv:
        bench_flags(bindir)
        return
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    counts = [int(x) for x in (sys.argv[3] if len(sys.argv) > 3
                               else "1,5,10").split(",")]
    bench_stack(bindir, runs, counts)


if __name__ == "__main__":
    main()
