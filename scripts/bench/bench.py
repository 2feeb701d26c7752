#!/usr/bin/env python3
"""The measurements of scripts/bench-vs-node-exporter.sh (issue 12), side by side in one run.

Called by that script (which checks the tools and builds the agent and the floor program):

    bench.py --agent BIN --ne BIN --floor BIN --out BENCHMARKS.md [--quick]

Prints PASS/MISS for each goal and writes BENCHMARKS.md (keeping the sections other scripts
own, from `<!-- bench-hostile:begin -->` on). This is a benchmark, not a test: nothing here
fails on a figure; it reports.
"""
import argparse
import datetime
import http.client
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
HZ = os.sysconf("SC_CLK_TCK")
GZIP = {"Accept-Encoding": "gzip"}


def log(*a):
    print("bench:", *a, file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def cpu_seconds(pid):
    """utime + stime of every thread of the process, from /proc/PID/stat."""
    with open("/proc/%d/stat" % pid) as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / HZ


def thread_runtime(pid):
    """Run time of the process's live threads in seconds (the sum of their schedstat run
    times, in ns: precise where /proc/PID/stat counts clock ticks of 10 ms), and their ids."""
    total, tids = 0, set()
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                total += int(f.read().split()[0])
            tids.add(tid)
        except (OSError, ValueError, IndexError):
            pass
    return total / 1e9, tids


def sandbox_overhead(on, off, n, rounds):
    """The sandbox's overhead from paired turns: `on` and `off` are instances of the same
    binary with and without the sandbox (two of each: an A/A comparison of two instances of
    one binary differed by about 2% here); each round gives every instance n sequential
    scrapes, in an order rotated from round to round, and yields one ratio (the on instances'
    CPU over the off ones'). Returns the per-round ratios. A turn during which one of the
    instance's threads exited (its run time would leave the sum) is run again."""
    exps = on + off
    for e in exps:
        e.client.scrapes(5)
    ratios = []
    for r in range(rounds):
        used = {}
        k = r % len(exps)
        for e in exps[k:] + exps[:k]:
            for _ in range(3):
                t0, ids0 = thread_runtime(e.pid)
                e.client.scrapes(n)
                t1, ids1 = thread_runtime(e.pid)
                if ids0 <= ids1:
                    break
            else:
                raise RuntimeError("%s: threads kept exiting during a turn" % e.name)
            used[e.name] = t1 - t0
        ratios.append(sum(used[e.name] for e in on) / sum(used[e.name] for e in off))
    return ratios


def status(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


class Client:
    """One keep-alive HTTP connection, as Prometheus keeps one per target."""

    def __init__(self, port):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def get(self, path="/metrics", headers=None):
        for attempt in range(2):
            try:
                self.conn.request("GET", path, headers=headers or {})
                r = self.conn.getresponse()
                body = r.read()
                return r.status, body
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                if attempt:
                    raise

    def scrapes(self, n, path="/metrics", headers=GZIP):
        size = 0
        for _ in range(n):
            st, body = self.get(path, headers)
            if st != 200:
                raise RuntimeError("HTTP %d from port %d %s" % (st, self.port, path))
            size = len(body)
        return size


class Exporter:
    def __init__(self, kind, argv, port, tmp, name, env=None):
        self.kind, self.port, self.name = kind, port, name
        self.log = open(os.path.join(tmp, name + ".out"), "w")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT,
                                     env=dict(os.environ, **(env or {})))
        self.pid = self.proc.pid
        for _ in range(400):
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited at start (%s)" % (name, self.log.name))
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError("%s never listened on %d" % (name, port))
        self.client = Client(port)

    def cpu(self):
        return cpu_seconds(self.pid)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class Bench:
    def __init__(self, a):
        self.a = a
        self.tmp = tempfile.mkdtemp(prefix="bench-vs-ne.")
        os.chmod(self.tmp, 0o755)
        self.textfile = os.path.join(self.tmp, "textfile")
        os.mkdir(self.textfile, 0o755)
        os.chmod(self.textfile, 0o755)
        self.running = []
        mp = re.search(r'DEFAULT_MOUNT_POINTS_EXCLUDE: &str =\s*"(.*?)";',
                       open(os.path.join(ROOT, "src/collectors/filesystem.rs")).read(), re.S)
        self.mp_exclude = (mp.group(1).replace("\\\\", "\\") if mp else
                           r"^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)")

    def agent(self, name, flags, sandbox="enforce", env=None):
        port = free_port()
        argv = [self.a.agent, "--web.listen-address", "127.0.0.1:%d" % port,
                "--pid-file", os.path.join(self.tmp, name + ".pid"),
                "--log-file", os.path.join(self.tmp, name + ".log"),
                "--sandbox", sandbox, "--collector.textfile.directory", self.textfile] + flags
        e = Exporter("agent", argv, port, self.tmp, name, env)
        self.running.append(e)
        return e

    def ne(self, name, flags):
        port = free_port()
        argv = [self.a.ne, "--web.listen-address=127.0.0.1:%d" % port,
                "--collector.netdev.device-exclude=^$",
                "--collector.filesystem.mount-points-exclude=" + self.mp_exclude,
                "--collector.textfile.directory=" + self.textfile] + flags
        e = Exporter("ne", argv, port, self.tmp, name)
        self.running.append(e)
        return e

    def stop(self, *exps):
        for e in exps:
            e.stop()
            if e in self.running:
                self.running.remove(e)

    def close(self):
        for e in list(self.running):
            self.stop(e)
        shutil.rmtree(self.tmp, ignore_errors=True)


def successes(exp):
    st, body = exp.client.get("/metrics")
    return sorted(set(re.findall(r'^node_scrape_collector_success\{collector="([a-z_0-9]+)"\}',
                                 body.decode(), re.M)))


class Floor:
    """The compiled floor as a participant of the CPU rounds: each turn runs `floor` for n
    passes over the file list (a fresh process: its opening of the files is not counted, only
    the passes, by its own getrusage)."""
    name = "floor"

    def __init__(self, binary, flist):
        self.binary, self.flist = binary, flist
        self.files = self.bytes = 0

    def run(self, n):
        out = subprocess.run([self.binary, self.flist, str(n)], capture_output=True, text=True,
                             check=True).stdout
        m = dict(kv.split("=") for kv in out.split())
        self.files, self.bytes = int(m["files"]), int(m["bytes"])
        return float(m["cpu_per_pass"]) * n


def evict(path):
    """Drops a file's pages from the page cache (POSIX_FADV_DONTNEED), so the next process
    maps it from disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def cpu_per_scrape(exps, n, rounds, path="/metrics", headers=GZIP, per_round=None):
    """CPU seconds per scrape of each exporter (or per pass of the floor): `rounds` rounds, each
    participant in turn getting n sequential scrapes or passes (interleaved so that a change of
    the machine's load hits all); n is one count for all, or a dict of counts by participant.
    With `per_round` (a dict), each participant's per-round figures are appended there too."""
    count = (lambda e: n[e.name]) if isinstance(n, dict) else (lambda e: n)
    total = {e.name: 0.0 for e in exps}
    for e in exps:
        if not isinstance(e, Floor):
            e.client.scrapes(5, path, headers)
    for _ in range(rounds):
        for e in exps:
            if isinstance(e, Floor):
                used = e.run(count(e))
            else:
                c0 = e.cpu()
                e.client.scrapes(count(e), path, headers)
                used = e.cpu() - c0
            total[e.name] += used
            if per_round is not None:
                per_round.setdefault(e.name, []).append(used / count(e))
    return {e.name: total[e.name] / (count(e) * rounds) for e in exps}


def combine_wrk(runs):
    """Rounds of one exporter under one load: scrapes/s over all rounds (the rounds last
    alike), the median of the rounds' p50 and p99, every round's rate."""
    med = lambda v: sorted(v)[len(v) // 2]
    return {"rps": sum(r["rps"] for r in runs) / len(runs),
            "p50": med([r["p50"] for r in runs]), "p99": med([r["p99"] for r in runs]),
            "non2xx": sum(r["non2xx"] for r in runs),
            "requests": sum(r["requests"] for r in runs),
            "rounds": [r["rps"] for r in runs]}


def wrk(exp, threads, conns, duration):
    out = subprocess.run(["wrk", "-t%d" % threads, "-c%d" % conns, "-d%s" % duration,
                          "--latency", "-H", "Accept-Encoding: gzip",
                          "http://127.0.0.1:%d/metrics" % exp.port],
                         capture_output=True, text=True, check=True).stdout

    def ms(v):
        m = re.match(r"([\d.]+)(us|ms|s|m)", v)
        x, u = float(m.group(1)), m.group(2)
        return {"us": x / 1000, "ms": x, "s": x * 1000, "m": x * 60000}[u]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = ms(re.search(r"\s50%\s+(\S+)", out).group(1))
    p99 = ms(re.search(r"\s99%\s+(\S+)", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    total = int(re.search(r"(\d+) requests in", out).group(1))
    return {"rps": rps, "p50": p50, "p99": p99, "non2xx": int(bad.group(1)) if bad else 0,
            "requests": total}


def strace_attach(pid, out, extra):
    p = subprocess.Popen(["strace", "-f", "-qq", "-p", str(pid), "-o", out] + extra,
                         stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # attached to every thread
    return p


def strace_detach(p):
    time.sleep(0.3)
    p.send_signal(2)
    p.wait(10)


def scrape_files(b, flags):
    """The /proc and /sys files a scrape of a running agent reads: strace (`-y`: each
    descriptor's path) of its `pread64` and `read` calls over one scrape after three (the
    first scrape opens the kept descriptors; a later one reads what every scrape reads, and
    not what only the first does, such as the agent's own mount table, read again only when it
    changes). The agent's own /proc/PID/ paths are written /proc/self/ for the floor."""
    e = b.agent("floorlist", flags)
    e.client.scrapes(3)
    out = os.path.join(b.tmp, "read.strace")
    st = strace_attach(e.pid, out, ["-y", "-e", "trace=pread64,read"])
    e.client.scrapes(1)
    strace_detach(st)
    b.stop(e)
    own = re.compile(r"^/proc/%d/" % e.pid)
    files = set()
    for line in open(out):
        for m in re.finditer(r"\b(?:pread64|read)\(\d+<([^>]+)>", line):
            files.add(own.sub("/proc/self/", m.group(1)))
    return sorted(f for f in files if f.startswith(("/proc/", "/sys/")) and os.path.isfile(f))


def syscalls_per_scrape(b, exp, n):
    out = os.path.join(b.tmp, "count.strace")
    exp.client.scrapes(5)
    st = strace_attach(exp.pid, out, ["-c", "-U", "name,calls,errors"])
    exp.client.scrapes(n)
    strace_detach(st)
    counts = {}
    for line in open(out):
        f = line.split()
        if len(f) >= 2 and f[1].isdigit() and f[0] not in ("total",) and not f[0].startswith("-"):
            counts[f[0]] = (int(f[1]), int(f[2]) if len(f) > 2 and f[2].isdigit() else 0)
    return {k: (c / n, e / n) for k, (c, e) in counts.items()}


def fit(xs, ys):
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    slope = sxy / sxx if sxx else 0.0
    icpt = my - slope * mx
    ss_tot = sum((y - my) ** 2 for y in ys)
    ss_res = sum((y - icpt - slope * x) ** 2 for x, y in zip(xs, ys))
    r2 = 1 - ss_res / ss_tot if ss_tot else 1.0
    return slope, icpt, r2


SCALING_COLLECTORS = ["cpu", "cpufreq", "diskstats", "filesystem", "netclass", "netdev",
                      "schedstat", "softnet", "stat"]


def scaling_point(b, shape, target_cpu):
    tree = os.path.join(b.tmp, "tree")
    shutil.rmtree(tree, ignore_errors=True)
    subprocess.run([sys.executable, os.path.join(HERE, "gen-tree.py"), tree,
                    "--cpus", str(shape["cpus"]), "--disks", str(shape["items"]),
                    "--ifaces", str(shape["items"]), "--mounts", str(shape["items"])], check=True)
    for dp, dn, fn in os.walk(tree):
        os.chmod(dp, 0o755)
    paths = ["proc", "sys", "rootfs", "udev"]
    pa = dict(zip(paths, (os.path.join(tree, p) for p in paths)))
    sel = ["--collector.disable-defaults"] + ["--collector." + c for c in SCALING_COLLECTORS]
    ag = b.agent("scale-agent", sel + ["--path.procfs", pa["proc"], "--path.sysfs", pa["sys"],
                                       "--path.rootfs", pa["rootfs"],
                                       "--path.udev.data", pa["udev"]])
    ne = b.ne("scale-ne", sel + ["--path.procfs=" + pa["proc"], "--path.sysfs=" + pa["sys"],
                                 "--path.rootfs=" + pa["rootfs"], "--path.udev.data=" + pa["udev"],
                                 "--no-collector.netdev.netlink"])
    res = {}
    for e in (ag, ne):
        _, body = e.client.get("/metrics")
        text = body.decode()
        failed = re.findall(r'^node_scrape_collector_success\{collector="(\w+)"\} 0', text, re.M)
        res[e.kind + ".bytes"] = len(body)
        res[e.kind + ".failed"] = failed
        # Enough scrapes for about target_cpu seconds of CPU (clock ticks are 10 ms).
        c0, t0 = e.cpu(), time.time()
        e.client.scrapes(10, headers={})
        est = max((e.cpu() - c0) / 10, (time.time() - t0) / 10 * 0.3, 1e-4)
        n = int(min(max(target_cpu / est, 5), 2000))
        c0 = e.cpu()
        e.client.scrapes(n, headers={})
        res[e.kind + ".cpu"] = (e.cpu() - c0) / n
    b.stop(ag, ne)
    return res


def gnuplot(png, title, xlabel, ylabel, series, logx=True):
    """series: [(label, [(x, y)])]; a PNG through gnuplot (Debian's gnuplot-nox)."""
    data = []
    for label, pts in series:
        data.append("\n".join("%g %g" % p for p in pts) + "\ne")
    plots = ", ".join("'-' using 1:2 with linespoints title '%s'" % l for l, _ in series)
    script = """set terminal pngcairo size 800,500 noenhanced
set output '%s'
set title '%s'
set xlabel '%s'
set ylabel '%s'
set key left top
set grid
%s
set logscale y
plot %s
%s
""" % (png, title, xlabel, ylabel, "set logscale x 2" if logx else "", plots, "\n".join(data))
    r = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
    if r.returncode != 0:
        # pngcairo may be missing from a minimal gnuplot build: fall back to the gd terminal.
        r = subprocess.run(["gnuplot"], input=script.replace("pngcairo", "png"), text=True,
                           capture_output=True)
    if r.returncode != 0:
        raise RuntimeError("gnuplot: " + r.stderr)


def verdict(ok):
    return "PASS" if ok else "MISS"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--agent", required=True)
    ap.add_argument("--ne", required=True)
    ap.add_argument("--floor", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--target", required=True, help="cargo target directory (for helpers)")
    ap.add_argument("--quick", action="store_true", help="fewer scrapes, shorter runs")
    a = ap.parse_args()
    q = a.quick
    N = 50 if q else 200          # node_exporter's sequential scrapes per round
    # The agent's (both sandbox settings) and the floor's: process CPU time comes in clock
    # ticks of 10 ms, and 200 agent scrapes are about 35 ticks, so one tick more or less moved
    # a round by 3% (the sandbox's overhead measured +2.8% and +6.2% in two runs of one
    # binary). 1,000 scrapes bring that to about 0.6%.
    N_AG = 200 if q else 1000
    ROUNDS = 2 if q else 5
    # The sandbox's paired turns: about 40 s in all.
    SB_ROUNDS, SB_N = (4, 50) if q else (16, 250)
    DUR = "3s" if q else "10s"
    # Throughput: rounds of this many seconds for each exporter (10 s each in all).
    TP_ROUNDS, TP_DUR = (2, "2s") if q else (5, "2s")
    b = Bench(a)
    R = {}
    try:
        # 1. The collectors both run by default, on this host.
        ne0 = b.ne("ne-defaults", [])
        ag0 = b.agent("agent-defaults", [])
        common = sorted(set(successes(ne0)) & set(successes(ag0)))
        only_ne = sorted(set(successes(ne0)) - set(common))
        only_ag = sorted(set(successes(ag0)) - set(common))
        b.stop(ne0, ag0)
        flags = ["--collector.disable-defaults"] + ["--collector." + c for c in common]
        log("common collectors (%d): %s" % (len(common), " ".join(common)))

        # 2a. Scaling on synthetic trees (first: its slopes are ratios within each point, the
        # least sensitive to the machine's load, which other work on it may still move).
        cpus_sweep = [2, 16, 128, 1024]
        items_sweep = [1, 16, 256, 1024, 4096] if q else [1, 4, 16, 64, 256, 1024, 4096]
        target = 0.3 if q else 1.0
        sc_cpu, sc_items = [], []
        for n in cpus_sweep:
            log("scaling: %d CPUs" % n)
            sc_cpu.append((n, scaling_point(b, {"cpus": n, "items": 1}, target)))
        for n in items_sweep:
            log("scaling: %d disks, interfaces and mounts" % n)
            sc_items.append((n, scaling_point(b, {"cpus": 2, "items": n}, target)))
        R["sc_cpu"], R["sc_items"] = sc_cpu, sc_items

        # 2. Memory: fresh instances; idle after 20 scrapes, peak under 64 clients. Both
        # binaries start from disk (their page cache evicted), as after a boot: how much of a
        # binary a process maps depends on how its page cache was filled (a fresh copy of one
        # binary mapped up to 1 MiB more than the original, pages read in by a build or a
        # copy rather than by faults).
        for binary in (a.agent, a.ne):
            evict(binary)
        ne = b.ne("ne-mem", flags)
        ag = b.agent("agent-mem", flags)
        for e in (ne, ag):
            e.client.scrapes(20)
        time.sleep(2)
        for e in (ne, ag):
            R[e.kind + ".idle"] = status(e.pid, "VmRSS")
            R[e.kind + ".idle_anon"] = status(e.pid, "RssAnon")
            R[e.kind + ".idle_file"] = status(e.pid, "RssFile")
        for e in (ne, ag):
            log("%s: 64 concurrent clients" % e.name)
            R[e.kind + ".w64"] = wrk(e, 2, 64, DUR)
            R[e.kind + ".peak"] = status(e.pid, "VmHWM")
            R[e.kind + ".threads"] = status(e.pid, "Threads")
        b.stop(ne, ag)

        # 3. CPU per scrape (gzip), sandbox on and off, node_exporter, and the floor (the files
        # of one scrape, pread through kept descriptors) in the same rounds; then throughput.
        files = scrape_files(b, flags)
        flist = os.path.join(b.tmp, "files")
        open(flist, "w").write("\n".join(files) + "\n")
        floor = Floor(a.floor, flist)
        ne = b.ne("ne", flags)
        ag = b.agent("agent", flags)
        off = b.agent("agent-sandbox-off", flags, sandbox="off")
        log("CPU per scrape: %d rounds of %d scrapes (node_exporter) and %d (agent, floor)"
            % (ROUNDS, N, N_AG))
        rounds = {}
        counts = {ag.name: N_AG, off.name: N_AG, floor.name: N_AG, ne.name: N}
        cpu = cpu_per_scrape([ag, off, ne, floor], counts, ROUNDS, per_round=rounds)
        R["agent.cpu"], R["off.cpu"], R["ne.cpu"] = cpu["agent"], cpu["agent-sandbox-off"], cpu["ne"]
        # 3b. The sandbox's own overhead, in paired turns of its own (see sandbox_overhead).
        on2 = b.agent("agent-2", flags)
        off2 = b.agent("agent-sandbox-off-2", flags, sandbox="off")
        log("sandbox overhead: %d rounds of %d scrapes, 2 instances on and 2 off"
            % (SB_ROUNDS, SB_N))
        R["sbx.ratios"] = sandbox_overhead([ag, on2], [off, off2], SB_N, SB_ROUNDS)
        R["sbx.n"] = SB_N
        b.stop(on2, off2)
        R["floor.cpu"], R["floor.files"], R["floor.bytes"] = cpu["floor"], floor.files, floor.bytes
        R["rounds"] = rounds
        for e in (ag, ne):
            R[e.kind + ".gz_bytes"] = e.client.scrapes(1)
            R[e.kind + ".bytes"] = e.client.scrapes(1, headers={})
        def shared(e):
            # The agent's count of answers it shared between concurrent identical scrapes.
            st, body = e.client.get("/metrics", {})
            for line in body.decode("utf-8", "replace").splitlines():
                if line.startswith("monitoring_agent_scrape_answers_shared_total "):
                    return float(line.split()[1])
            raise RuntimeError("no monitoring_agent_scrape_answers_shared_total")
        # Throughput in interleaved rounds, as the CPU series: each round runs both exporters
        # one after the other, so that the host's load (which moves by 20% within minutes
        # here) weighs on both alike; the goal's ratio is over the rounds' sums.
        R["agent.w8_shared"] = 0
        R["tp"] = (TP_ROUNDS, TP_DUR)
        for k, threads, conns in (("w1", 1, 1), ("w8", 2, 8)):
            rounds = {"agent": [], "ne": []}
            for r in range(TP_ROUNDS):
                for e in ((ag, ne) if r % 2 == 0 else (ne, ag)):
                    log("%s: wrk %d clients, round %d" % (e.name, conns, r + 1))
                    before = shared(e) if e is ag and k == "w8" else 0
                    rounds[e.kind].append(wrk(e, threads, conns, TP_DUR))
                    if e is ag and k == "w8":
                        R["agent.w8_shared"] += shared(e) - before
            for kind, runs in rounds.items():
                R[kind + "." + k] = combine_wrk(runs)
        # 4. Syscalls per scrape (strace -c on the running agent).
        R["agent.sys"] = syscalls_per_scrape(b, ag, 20 if q else 50)
        # 5. Per collector: collect[]=NAME, sequential gzip scrapes.
        per = {}
        M = 20 if q else 200
        for c in common:
            path = "/metrics?collect[]=" + c
            r = cpu_per_scrape([ag, ne], M, 1, path)
            per[c] = (r["agent"], r["ne"])
        R["per"] = per
        body_file = os.path.join(b.tmp, "body.txt")
        open(body_file, "wb").write(ag.client.get("/metrics")[1])
        b.stop(ne, ag, off)
        # gzip: levels and backends on this body (scripts/bench/gzip-levels).
        R["gzip"] = {}
        gz_target = os.path.join(b.a.target, "bench-gzip")
        for backend, extra in (("miniz_oxide", []), ("zlib-rs", ["--features", "zlib-rs"])):
            subprocess.run(["cargo", "build", "--release", "--locked", "--quiet"] + extra,
                           cwd=os.path.join(HERE, "gzip-levels"), check=True,
                           env=dict(os.environ, CARGO_TARGET_DIR=gz_target))
            out = subprocess.run([os.path.join(gz_target, "release", "gzip-levels"), body_file],
                                 capture_output=True, text=True, check=True).stdout
            R["gzip"][backend] = [dict(kv.split("=") for kv in l.split()) for l in out.splitlines()]


    finally:
        b.close()
    write(a, R, common, only_ne, only_ag, flags, q, (N, N_AG), ROUNDS, DUR)


def write(a, R, common, only_ne, only_ag, flags, q, counts, ROUNDS, DUR):
    N, N_AG = counts
    us = lambda s: "%.0f" % (s * 1e6)
    mib = lambda k: "%.1f" % (k / 1024)
    floor = R["floor.cpu"]
    agent_cpu = R["agent.cpu"]
    cpu_x = agent_cpu / floor
    # The ratio within each round (the agent's turn against the floor's turn of that round).
    round_x = [ag / fl for ag, fl in zip(R["rounds"]["agent"], R["rounds"]["floor"])]
    idle_r = R["agent.idle"] / R["ne.idle"]
    peak_r = R["agent.peak"] / R["ne.peak"]
    t1 = R["agent.w1"]["rps"] / R["ne.w1"]["rps"]
    t8 = R["agent.w8"]["rps"] / R["ne.w8"]["rps"]
    sbx_sums = R["agent.cpu"] / R["off.cpu"] - 1
    sbx_r = sorted(R["sbx.ratios"])
    sbx = statistics.median(sbx_r) - 1

    sc_lines = []
    pngs = {}
    slopes = {}
    for key, label, xname in (("sc_cpu", "CPUs", "cpus"), ("sc_items", "disks, interfaces and mounts (each)", "items")):
        pts = R[key]
        xs = [n for n, _ in pts]
        for who in ("agent", "ne"):
            ys = [r[who + ".cpu"] * 1e6 for _, r in pts]
            slopes[(key, who)] = fit(xs, ys)
            ys_b = [r[who + ".bytes"] for _, r in pts]
            slopes[(key, who, "bytes")] = fit(xs, ys_b)
        png = "BENCHMARKS-scaling-%s.png" % xname
        gnuplot(os.path.join(ROOT, png), "CPU per scrape vs %s" % label, label, "CPU per scrape (µs)",
                [("monitoring-agent", [(n, r["agent.cpu"] * 1e6) for n, r in pts]),
                 ("node_exporter", [(n, r["ne.cpu"] * 1e6) for n, r in pts])])
        pngb = "BENCHMARKS-scaling-%s-bytes.png" % xname
        gnuplot(os.path.join(ROOT, pngb), "Bytes per scrape vs %s" % label, label, "bytes per scrape",
                [("monitoring-agent", [(n, r["agent.bytes"]) for n, r in pts]),
                 ("node_exporter", [(n, r["ne.bytes"]) for n, r in pts])])
        pngs[key] = (png, pngb)
    sc_verdicts = {}
    for key in ("sc_cpu", "sc_items"):
        sa, _, ra = slopes[(key, "agent")]
        sn, _, rn = slopes[(key, "ne")]
        sc_verdicts[key] = (sa < sn, ra >= 0.98, sa, sn, ra, rn)

    goals = [
        ("CPU per scrape (gzip) <= 1.5x the compiled floor", cpu_x <= 1.5,
         "%.2fx (%s µs vs %s µs; per round %.2fx to %.2fx)" % (cpu_x, us(agent_cpu), us(floor),
                                                              min(round_x), max(round_x))),
        ("idle RSS <= 1/5 of node_exporter's", idle_r <= 0.2,
         "%.2f (%s vs %s MiB)" % (idle_r, mib(R["agent.idle"]), mib(R["ne.idle"]))),
        ("peak RSS under 64 clients <= 1/5 of node_exporter's", peak_r <= 0.2,
         "%.2f (%s vs %s MiB)" % (peak_r, mib(R["agent.peak"]), mib(R["ne.peak"]))),
        ("scrapes/s >= 10x node_exporter's, 1 client", t1 >= 10, "%.1fx" % t1),
        ("scrapes/s >= 10x node_exporter's, 8 clients", t8 >= 10, "%.1fx" % t8),
        ("sandbox overhead <= 5% of CPU per scrape", sbx <= 0.05,
         "%+.1f%% (median of %d paired rounds; rounds %+.1f%% to %+.1f%%)"
         % (sbx * 100, len(sbx_r), (sbx_r[0] - 1) * 100, (sbx_r[-1] - 1) * 100)),
    ]
    for key, what in (("sc_cpu", "CPUs"), ("sc_items", "disks/interfaces/mounts")):
        smaller, linear, sa, sn, ra, rn = sc_verdicts[key]
        goals.append(("scaling with %s: linear (R² >= 0.98) and a smaller slope than node_exporter's" % what,
                      smaller and linear,
                      "slope %.2f vs %.2f µs per item, R² %.3f (node_exporter %.3f)" % (sa, sn, ra, rn)))
    print()
    for g, ok, fig in goals:
        print("%s  %s: %s" % (verdict(ok), g, fig))

    kernel = " ".join(platform.uname()[i] for i in (0, 2, 4))
    cpu_model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                      if l.startswith("model name")), "unknown")
    ne_version = subprocess.run([a.ne, "--version"], capture_output=True, text=True)
    ne_version = (ne_version.stdout + ne_version.stderr).splitlines()[0]
    ag_version = subprocess.run([a.agent, "--version"], capture_output=True, text=True).stdout.strip()
    git = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                         text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--", "src", "Cargo.toml",
                            "Cargo.lock", "policy"], capture_output=True, text=True).stdout.strip()
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load = open("/proc/loadavg").read().split()[:3]

    L = []
    L.append("# Benchmark: monitoring-agent vs node_exporter\n")
    L.append("Measured by `scripts/bench-vs-node-exporter.sh`%s on %s, in one run on one host "
             "(load average at the end: %s), at commit %s%s:\n" % (" --quick" if q else "", date,
             " ".join(load), git, " with uncommitted changes" if dirty else ""))
    L.append("- kernel `%s`; %d CPUs (%s)" % (kernel, os.cpu_count(), cpu_model))
    L.append("- node_exporter: `%s` (Debian's `prometheus-node-exporter`), upstream defaults where "
             "Debian patched them (`--collector.netdev.device-exclude='^$'`, upstream's mount-point exclude)" % ne_version)
    L.append("- monitoring-agent: `%s`, release build, started as root, dropped to `monitoring-agent`, "
             "`--sandbox enforce` (Landlock + seccomp) unless said otherwise" % ag_version)
    L.append("- the same %d collectors for both (`--collector.disable-defaults` plus each): %s" % (
        len(common), ", ".join(common)))
    L.append("  (defaults of node_exporter only: %s; of the agent only: %s)" % (
        ", ".join(only_ne) or "none", ", ".join(only_ag) or "none"))
    L.append("- every scrape sends `Accept-Encoding: gzip`, as Prometheus does, unless said otherwise\n")
    L.append("Reproduce with `sudo scripts/bench-vs-node-exporter.sh`. A benchmark, not a test: it "
             "prints PASS or MISS per goal and fails on none.\n")
    L.append("## Goals (issue 12)\n")
    L.append("| goal | verdict | measured |")
    L.append("| --- | --- | --- |")
    for g, ok, fig in goals:
        L.append("| %s | **%s** | %s |" % (g, verdict(ok), fig))
    L.append("")
    L.append("## Side by side\n")
    L.append("| measure | node_exporter | monitoring-agent | agent / NE |")
    L.append("| --- | ---: | ---: | ---: |")
    row = lambda n, x, y, r: L.append("| %s | %s | %s | %s |" % (n, x, y, r))
    row("CPU per scrape, gzip (µs; %d interleaved rounds of %d sequential scrapes, %d for the "
        "agent)" % (ROUNDS, N, N_AG),
        us(R["ne.cpu"]), us(R["agent.cpu"]), "%.3f" % (R["agent.cpu"] / R["ne.cpu"]))
    row("idle RSS (MiB, after 20 scrapes)", mib(R["ne.idle"]), mib(R["agent.idle"]), "%.2f" % idle_r)
    row("  of which anonymous / file-backed (MiB)", "%s / %s" % (mib(R["ne.idle_anon"]), mib(R["ne.idle_file"])),
        "%s / %s" % (mib(R["agent.idle_anon"]), mib(R["agent.idle_file"])), "")
    row("peak RSS, VmHWM after 64 concurrent clients (MiB)", mib(R["ne.peak"]), mib(R["agent.peak"]), "%.2f" % peak_r)
    row("  wrk -c64: scrapes/s (non-2xx: `--web.max-requests` 40 answered 503)",
        "%.0f (%d)" % (R["ne.w64"]["rps"], R["ne.w64"]["non2xx"]),
        "%.0f (%d)" % (R["agent.w64"]["rps"], R["agent.w64"]["non2xx"]), "")
    row("threads after the load", R["ne.threads"], R["agent.threads"], "")
    tp_rounds, tp_dur = R["tp"]
    for k, n in (("w1", "1 client (wrk -t1 -c1, %d rounds of %s)" % (tp_rounds, tp_dur)),
                 ("w8", "8 clients (wrk -t2 -c8, %d rounds of %s)" % (tp_rounds, tp_dur))):
        row("scrapes/s, " + n, "%.1f" % R["ne." + k]["rps"], "%.1f" % R["agent." + k]["rps"],
            "%.1f" % (R["agent." + k]["rps"] / R["ne." + k]["rps"]))
        row("  per round (scrapes/s)", " ".join("%.0f" % v for v in R["ne." + k]["rounds"]),
            " ".join("%.0f" % v for v in R["agent." + k]["rounds"]),
            " ".join("%.1f" % (a_ / n_) for a_, n_ in zip(R["agent." + k]["rounds"],
                                                        R["ne." + k]["rounds"])))
        row("  latency p50 / p99 (ms; median of the rounds)", "%.2f / %.2f" % (R["ne." + k]["p50"], R["ne." + k]["p99"]),
            "%.2f / %.2f" % (R["agent." + k]["p50"], R["agent." + k]["p99"]), "")
        row("  non-2xx", R["ne." + k]["non2xx"], R["agent." + k]["non2xx"], "")
        if k == "w8":
            row("  answers shared between concurrent identical scrapes "
                "(`monitoring_agent_scrape_answers_shared_total`)", "n/a",
                "%.0f of %d" % (R["agent.w8_shared"], R["agent.w8"]["requests"]), "")
    row("bytes per scrape, plain / gzip", "%d / %d" % (R["ne.bytes"], R["ne.gz_bytes"]),
        "%d / %d" % (R["agent.bytes"], R["agent.gz_bytes"]), "")
    L.append("")
    L.append("Allocator: glibc, with the limits the agent sets itself at start-up "
             "(`startup::limit_malloc_arenas`: two arenas, a 16 KiB trim threshold; "
             "`MALLOC_ARENA_MAX` in the environment is overridden, so it is not measured "
             "separately).\n")
    L.append("## The floor\n")
    L.append("`scripts/bench/floor.c` (built by the script with `cc -O2`) opens the %d /proc and /sys "
             "files that a scrape of a running agent reads (`strace -f -y -e trace=pread64,read` "
             "attached to it over its fourth scrape; the agent's own `/proc/PID/` as "
             "`/proc/self/`), keeps them open, and `pread()`s each whole from offset 0 once per "
             "pass, by the rules of `src/collector/fsio.rs`: a sysfs attribute in one read, "
             "`/proc/net/udp` and `udp6` until a read leaves room for a line in a page, any other "
             "file until a read returns 0; %d bytes per pass. It takes its turn in every round of "
             "the CPU series, after the agent, the agent with `--sandbox off` and node_exporter: "
             "%d passes per turn (a fresh process each turn; its own getrusage counts the passes "
             "only, not the opening of the files), as many as the agent's scrapes (node_exporter "
             "gets %d a turn: its CPU time, counted in clock ticks of 10 ms, is as precise with "
             "fewer).\n" % (R["floor.files"], R["floor.bytes"], N_AG, N))
    L.append("| | CPU per scrape or pass (µs) | × floor |")
    L.append("| --- | ---: | ---: |")
    L.append("| floor | %s | 1.00 |" % us(floor))
    L.append("| agent, gzip, sandbox on | %s | %.2f |" % (us(R["agent.cpu"]), cpu_x))
    L.append("| agent, gzip, `--sandbox off` | %s | %.2f |" % (us(R["off.cpu"]), R["off.cpu"] / floor))
    L.append("| node_exporter, gzip | %s | %.2f |" % (us(R["ne.cpu"]), R["ne.cpu"] / floor))
    L.append("")
    L.append("Round by round (µs per scrape or pass; the machine's load moves between rounds, "
             "and within a round it weighs on all four alike):\n")
    L.append("| round | agent | `--sandbox off` | node_exporter | floor | agent × floor |")
    L.append("| ---: | ---: | ---: | ---: | ---: | ---: |")
    rr = R["rounds"]
    for k in range(len(rr["floor"])):
        L.append("| %d | %s | %s | %s | %s | %.2f |" % (
            k + 1, us(rr["agent"][k]), us(rr["agent-sandbox-off"][k]), us(rr["ne"][k]),
            us(rr["floor"][k]), round_x[k]))
    L.append("")
    L.append("The floor reads files only: the agent also lists directories (`getdents64`), opens "
             "per-process and udev files afresh, parses, encodes, compresses and speaks HTTP.\n")
    L.append("## The sandbox's own overhead\n")
    L.append("The same binary and the same collectors, `--sandbox enforce` against `--sandbox off` "
             "(still started as root and dropped; no Landlock, no seccomp), in paired rounds of "
             "their own: two instances of each (an A/A comparison of two instances of one binary "
             "differed by about 2%%), %d sequential gzip scrapes per instance and round, in an "
             "order rotated from round to round; CPU from the run time of the instances' threads "
             "(schedstat, ns). Each round gives one ratio (the two sandboxed instances' CPU over "
             "the two others'); the overhead is their median: **%+.1f%%** (goal ≤ 5%%). "
             "Rounds, sorted: %s.\n" % (R["sbx.n"], sbx * 100,
                                      ", ".join("%+.1f%%" % ((x - 1) * 100) for x in sbx_r)))
    L.append("In the CPU series above (%d turns of one instance each, sums): `--sandbox enforce` "
             "%s µs, `--sandbox off` %s µs per scrape, %+.1f%%; there, the two turns of a round "
             "are seconds apart and the host's speed moves between them.\n"
             % (len(R["rounds"]["agent"]), us(R["agent.cpu"]), us(R["off.cpu"]), sbx_sums * 100))
    L.append("## Where the time goes: CPU per collector\n")
    L.append("Each collector alone (`/metrics?collect[]=NAME`, %d sequential gzip scrapes each, both "
             "exporters in turn). Every row includes the fixed cost of one HTTP request, the meta "
             "metrics and the exporter's own metrics; node_exporter builds a new registry for a "
             "filtered request.\n" % (20 if q else 200))
    L.append("| collector | node_exporter (µs) | monitoring-agent (µs) | agent / NE |")
    L.append("| --- | ---: | ---: | ---: |")
    for c, (x, y) in sorted(R["per"].items(), key=lambda kv: -kv[1][0]):
        L.append("| %s | %s | %s | %s |" % (c, us(y), us(x), "%.2f" % (x / y) if y else "—"))
    L.append("")
    L.append("## System calls per scrape\n")
    L.append("`strace -f -c` attached to the running agent over %d sequential gzip scrapes after 5 "
             "warm-up ones, divided by that number (strace's own start and end included: a few "
             "calls in all).\n" % (20 if q else 50))
    L.append("| system call | calls per scrape | failing per scrape |")
    L.append("| --- | ---: | ---: |")
    total = 0.0
    for k, (c, e) in sorted(R["agent.sys"].items(), key=lambda kv: -kv[1][0]):
        total += c
        L.append("| `%s` | %.1f | %.1f |" % (k, c, e))
    L.append("| all | %.1f | |" % total)
    L.append("")
    L.append("## gzip: level and backend\n")
    L.append("`scripts/bench/gzip-levels` (flate2, built once per backend) compresses this run's "
             "uncompressed agent scrape (%d bytes) 1,000 times per level, with a new encoder per body "
             "and with one reused compressor (what `exposition::gzip` does), CPU time per body:\n" % R["agent.bytes"])
    L.append("| backend | level | bytes | new encoder (µs) | reused (µs) |")
    L.append("| --- | ---: | ---: | ---: | ---: |")
    for backend, rows in R["gzip"].items():
        for r in rows:
            L.append("| %s | %s | %s | %s | %s |" % (backend, r["level"], r["bytes"], r["fresh_us"], r["reused_us"]))
    L.append("")
    L.append("The agent uses zlib-rs at level 1 with a reused compressor: the least CPU per body; "
             "the body is larger than at higher levels, which costs a scrape nothing on a local "
             "network.\n")
    L.append("## Scaling on synthetic trees\n")
    L.append("`scripts/bench/gen-tree.py` writes a /proc, /sys and rootfs with N CPUs (with one "
             "disk, interface and mount), or N disks, N network interfaces and N mounts at once "
             "(with 2 CPUs); both exporters read the same tree (`--path.procfs`, `--path.sysfs`, "
             "`--path.rootfs`, `--path.udev.data`; node_exporter with `--no-collector.netdev.netlink` "
             "so that it reads the tree's /proc/net/dev) and run the same collectors: %s. CPU per "
             "uncompressed scrape, each point with enough sequential scrapes for about %.1f s of CPU "
             "time. Slope: least-squares line through the points, µs per item.\n" % (
                 ", ".join(SCALING_COLLECTORS), 0.3 if q else 1.0))
    for key, label in (("sc_cpu", "CPUs"), ("sc_items", "disks = interfaces = mounts")):
        L.append("| %s | NE CPU (µs) | agent CPU (µs) | agent / NE | NE bytes | agent bytes | failed collectors (NE / agent) |" % label)
        L.append("| ---: | ---: | ---: | ---: | ---: | ---: | --- |")
        for n, r in R[key]:
            L.append("| %d | %s | %s | %.2f | %d | %d | %s / %s |" % (
                n, us(r["ne.cpu"]), us(r["agent.cpu"]), r["agent.cpu"] / r["ne.cpu"], r["ne.bytes"],
                r["agent.bytes"], ",".join(r["ne.failed"]) or "—", ",".join(r["agent.failed"]) or "—"))
        smaller, linear, sa, sn, ra, rn = sc_verdicts[key]
        ba = slopes[(key, "agent", "bytes")][0]
        bn = slopes[(key, "ne", "bytes")][0]
        L.append("")
        L.append("Slope of CPU per scrape: agent **%.2f µs** per item (R² %.3f), node_exporter "
                 "**%.2f µs** (R² %.3f): the agent's slope is %.2f of node_exporter's. Bytes: %.0f "
                 "vs %.0f per item.\n" % (sa, ra, sn, rn, sa / sn if sn else float("nan"), ba, bn))
        png, pngb = pngs[key]
        L.append("![CPU per scrape vs %s](%s)\n" % (label, png))
        L.append("![Bytes per scrape vs %s](%s)\n" % (label, pngb))
    L.append("## How each figure is taken\n")
    L.append("- CPU: utime + stime of the whole process (`/proc/PID/stat`, all threads, clock ticks "
             "of 1/%d s) across the scrapes, divided by their number. Scrapes are sequential on one "
             "keep-alive connection (Python's `http.client`, as Prometheus keeps one connection per "
             "target). The agent, the agent with `--sandbox off` and node_exporter take turns in "
             "each round, so that the load of the machine weighs on all alike." % HZ)
    L.append("- RSS: `VmRSS` (idle, 2 s after 20 scrapes), `RssAnon`/`RssFile`, and `VmHWM` after "
             "`wrk -t2 -c64 -d%s` on fresh instances, started after both binaries' pages were "
             "dropped from the page cache (`posix_fadvise(POSIX_FADV_DONTNEED)`: mapped from "
             "disk, as after a boot). After start-up the agent unmaps (`MADV_DONTNEED`) "
             "the read-only file pages that only start-up touched (`runtime::release_startup_pages`); "
             "what a scrape touches again comes back from the page cache and counts." % DUR)
    L.append("- Throughput: `wrk -t1 -c1` and `wrk -t2 -c8` with `Accept-Encoding: gzip`, in %d "
             "interleaved rounds of %s per exporter (the order alternates between rounds, as both "
             "are measured within seconds of each other whatever the host's load does); the ratio is "
             "of the mean rates over the rounds. The agent's concurrent identical scrapes share one "
             "answer (built once, served to every scrape that arrived while it was being built; never "
             "cached past that): with 8 clients most answers are shared, and the table says how many. "
             "node_exporter builds every answer." % R["tp"])
    L.append("- The machine may be shared: compare the ratios of one run, not figures across runs.\n")
    body = "\n".join(L) + "\n"
    kept = ""
    if os.path.exists(a.out):
        old = open(a.out).read()
        i = old.find("<!-- bench-hostile:begin -->")
        if i >= 0:
            kept = "\n" + old[i:]
    open(a.out, "w").write(body + kept)
    log("wrote " + a.out)


if __name__ == "__main__":
    main()
