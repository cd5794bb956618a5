#!/usr/bin/env python3
"""IPMI benchmark: fencegate against the peer tools, measured in the same run.

Cases (each an on->off->verified transition; a prepare step powers the target back on):
  1. one host, off + verify, against OpenIPMI ipmi_sim (cipher suite 3):
     fencegate fence --device ipmi://...   vs  ipmipower --off --wait-until-off
     vs fence_ipmilan -o off (default, and --power-wait=0)
  2. the same against fencegate's simulator with suite 17 (and 3)
  3. 1,000 simulated BMCs fenced and verified in one call vs ipmipower over the same
     host list (wall time and peak RSS, fresh simulator per run)

Targets: fencegate <= 1.0x ipmipower's time for one host (process start included);
1,000 BMCs in <= 1 s wall and <= 64 MB peak RSS.

Needs: hyperfine, ipmitool, freeipmi-tools (ipmipower), fence-agents, openipmi (ipmi_sim),
GNU time (/usr/bin/time). Everything runs on 127.0.0.1 on free ports.
Usage: bench/ipmi.py [--runs N] [--scale-runs N] [--hosts N] [--record FILE]
"""
import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REL = os.path.join(ROOT, "target", "release")
FENCEGATE = os.path.join(REL, "fencegate")
BMCSIM = os.path.join(REL, "fencegate-bmcsim")
USER, PASSWORD = "admin", "password"


def need(*tools):
    missing = [t for t in tools if not shutil.which(t)]
    if missing:
        sys.exit("bench: missing tools: %s (Debian: hyperfine ipmitool freeipmi-tools fence-agents openipmi time)" % " ".join(missing))


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_ipmi_sim(tmp):
    d = os.path.join(tmp, "ipmi_sim")
    os.makedirs(os.path.join(d, "state"))
    src = os.path.join(ROOT, "hw-fixtures", "ipmi_sim")
    for f in ("fencebmc.emu", "chassis_control.sh"):
        shutil.copy(os.path.join(src, f), d)
    port = free_udp_port()
    conf = open(os.path.join(src, "lan.conf")).read()
    conf = re.sub(r"addr 127\.0\.0\.1 \d+", "addr 127.0.0.1 %d" % port, conf)
    open(os.path.join(d, "lan.conf"), "w").write(conf)
    p = subprocess.Popen(["ipmi_sim", "-c", "lan.conf", "-f", "fencebmc.emu", "-s", "./state", "-n"],
                         cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    wait_ipmi(port, 3)
    return p, port


def start_bmcsim(tmp, n, pwfile):
    p = subprocess.Popen([BMCSIM, "--ipmi", str(n), "--user", USER, "--password-file", pwfile],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    ready = json.loads(p.stdout.readline())
    return p, ready["ipmi"]


def wait_ipmi(port, cipher):
    for _ in range(100):
        r = subprocess.run(ipmitool(port, cipher) + ["chassis", "power", "status"], capture_output=True)
        if r.returncode == 0:
            return
        time.sleep(0.1)
    sys.exit("bench: BMC on port %d did not answer" % port)


def ipmitool(port, cipher):
    return ["ipmitool", "-I", "lanplus", "-C", str(cipher), "-H", "127.0.0.1", "-p", str(port),
            "-U", USER, "-P", PASSWORD, "-N", "1", "-R", "2"]


def hyperfine(cases, prepare, runs, export):
    cmd = ["hyperfine", "-N", "--style", "none", "--runs", str(runs), "--warmup", "1",
           "--export-json", export, "--prepare", prepare]
    for name, c in cases:
        cmd += ["-n", name, c]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    res = json.load(open(export))["results"]
    return {r["command"]: (statistics.median(r["times"]), min(r["times"]), max(r["times"])) for r in res}


def one_host(tmp, label, port, cipher, runs, state, pwfile, workaround):
    url = "ipmi://%s@127.0.0.1:%d?cipher=%d" % (USER, port, cipher)
    cases = [
        ("fencegate", "%s --state-dir %s fence --device %s --password-file %s" % (FENCEGATE, state, url, pwfile)),
        ("ipmipower", "ipmipower -D LAN_2_0 -h 127.0.0.1:%d -u %s -p %s -I %d %s--off --wait-until-off"
         % (port, USER, PASSWORD, cipher, workaround)),
        ("fence_ipmilan", "fence_ipmilan --lanplus --cipher %d -a 127.0.0.1 -u %d -l %s -p %s -o off"
         % (cipher, port, USER, PASSWORD)),
        ("fence_ipmilan --power-wait=0", "fence_ipmilan --lanplus --cipher %d -a 127.0.0.1 -u %d -l %s -p %s -o off --power-wait=0"
         % (cipher, port, USER, PASSWORD)),
    ]
    prepare = " ".join(ipmitool(port, cipher) + ["chassis", "power", "on"])
    res = hyperfine(cases, prepare, runs, os.path.join(tmp, "%s.json" % label.replace(" ", "_")))
    rows = []
    base = res["ipmipower"][0]
    for name, _ in cases:
        med, lo, hi = res[name]
        rows.append("| %s | %s | %.1f ms | %.1f–%.1f | %.2f× |" % (label, name, med * 1e3, lo * 1e3, hi * 1e3, med / base))
    return rows, res["fencegate"][0] / base


def peak(cmd, env=None):
    """Run cmd under GNU time; return (exit code, wall seconds, peak RSS MB)."""
    t0 = time.monotonic()
    r = subprocess.run(["/usr/bin/time", "-f", "%M"] + cmd, capture_output=True, text=True, env=env)
    wall = time.monotonic() - t0
    rss_kb = int(r.stderr.strip().splitlines()[-1])
    return r.returncode, wall, rss_kb / 1024.0, r


def scale(tmp, n, runs, pwfile):
    rows = []
    results = {"fencegate": [], "ipmipower": []}
    for i in range(runs):
        sim, addrs = start_bmcsim(tmp, n, pwfile)
        try:
            inv = os.path.join(tmp, "scale-%d.toml" % i)
            with open(inv, "w") as f:
                f.write('state_dir = "state-%d"\n[policy]\nstorm_limit = 0\n' % i)
                for j, a in enumerate(addrs):
                    f.write('[devices.b%04d]\ndriver = "ipmi"\naddress = "%s"\nuser = "%s"\npassword_file = "%s"\ncipher = "17"\n'
                            % (j, a, USER, pwfile))
                    f.write('[hosts.node%04d]\nlevels = [["b%04d"]]\n' % (j, j))
            code, wall, rss, r = peak([FENCEGATE, "--config", inv, "fence", "node[0000-%04d]" % (n - 1), "--fanout", str(n)])
            if code != 0:
                sys.exit("bench: fencegate scale run failed: %s" % r.stdout[-2000:])
            results["fencegate"].append((wall, rss))
        finally:
            sim.kill()
            sim.wait()
        sim, addrs = start_bmcsim(tmp, n, pwfile)
        try:
            hosts = ",".join(addrs)
            code, wall, rss, r = peak(["ipmipower", "-D", "LAN_2_0", "-h", hosts, "-u", USER, "-p", PASSWORD,
                                       "-I", "17", "-F", str(min(n, 1024)), "--off", "--wait-until-off"])
            ok = r.stdout.count(": ok")
            results["ipmipower"].append((wall, rss, ok))
        finally:
            sim.kill()
            sim.wait()
    fw = statistics.median(w for w, _ in results["fencegate"])
    fr = max(r for _, r in results["fencegate"])
    iw = statistics.median(w for w, _, _ in results["ipmipower"])
    ir = max(r for _, r, _ in results["ipmipower"])
    iok = min(o for _, _, o in results["ipmipower"])
    rows.append("| %d simulated BMCs | fencegate (one call, verified) | %.2f s | %.1f MB | %.2f× | all %d verified off |" % (n, fw, fr, fw / iw, n))
    rows.append("| %d simulated BMCs | ipmipower --off --wait-until-off | %.2f s | %.1f MB | 1.00× | %d of %d ok |" % (n, iw, ir, iok, n))
    return rows, fw, fr


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--scale-runs", type=int, default=3)
    ap.add_argument("--hosts", type=int, default=1000)
    ap.add_argument("--record", help="write the results table to this Markdown file")
    ap.add_argument("--skip-build", action="store_true")
    a = ap.parse_args()
    need("hyperfine", "ipmitool", "ipmipower", "fence_ipmilan", "ipmi_sim", "/usr/bin/time")
    if not a.skip_build:
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "fencegate", "-p", "fencegate-bmcsim"], cwd=ROOT, check=True)
    tmp = tempfile.mkdtemp(prefix="fencegate-bench-")
    pwfile = os.path.join(tmp, "pw")
    with open(pwfile, "w") as f:
        f.write(PASSWORD + "\n")
    os.chmod(pwfile, 0o600)
    procs = []
    try:
        ipmisim, ipmisim_port = start_ipmi_sim(tmp)
        procs.append(ipmisim)
        sim, addrs = start_bmcsim(tmp, 1, pwfile)
        procs.append(sim)
        sim_port = int(addrs[0].rsplit(":", 1)[1])
        state = os.path.join(tmp, "state")
        rows = []
        r, ratio_ipmisim = one_host(tmp, "ipmi_sim, suite 3", ipmisim_port, 3, a.runs, state, pwfile, "-W opensesspriv ")
        rows += r
        r, ratio_sim17 = one_host(tmp, "bmcsim, suite 17", sim_port, 17, a.runs, state, pwfile, "")
        rows += r
        r, _ = one_host(tmp, "bmcsim, suite 3", sim_port, 3, a.runs, state, pwfile, "")
        rows += r
        srows, wall, rss = scale(tmp, a.hosts, a.scale_runs, pwfile)
    finally:
        for p in procs:
            p.kill()
            p.wait()
    out = []
    out.append("| target | tool | median | min–max (ms) | vs ipmipower |")
    out.append("| --- | --- | --- | --- | --- |")
    out += rows
    out.append("")
    out.append("| case | tool | median wall | peak RSS | vs ipmipower | result |")
    out.append("| --- | --- | --- | --- | --- | --- |")
    out += srows
    out.append("")
    out.append("Targets: one host <= 1.00x ipmipower (ipmi_sim: %.2fx, simulator suite 17: %.2fx); "
               "%d BMCs <= 1 s and <= 64 MB (%.2f s, %.1f MB)." % (ratio_ipmisim, ratio_sim17, a.hosts, wall, rss))
    text = "\n".join(out)
    print(text)
    if a.record:
        with open(a.record, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
