#!/usr/bin/env python3
"""Data-feed benchmark (issue 4, "Quality and speed"): lifecert against its peers on the same
files in one run, with wall time, peak memory (RSS) and the ratios, and the matching quality
of both probabilistic matchers against the labels.

    python3 bench/feeds.py [--pensioners 1000000] [--exact 10000000] [--probabilistic 133000]
                           [--seed 2026] [--work target/feed-bench] [--build] [--skip-splink]
                           [--skip-duckdb] [--skip-exact] [--postgres URL] [--quiet-load 1.0]

Workloads, each run as a child process and measured with os.wait4 (wall time; ru_maxrss is
the peak resident set of that process, children not included):
  exact-ID      (a) lifecert feed ingest --source hospital_visit exact.csv --dry-run
                    (matching only: parse, normalise, match, group; no effects)
                (b) the same without --dry-run: the whole ingest with its effects
                (c) DuckDB reading the feed and the roll, joining on the ID number and
                    grouping by pensioner (bench/peers/duckdb_exact.py)
  probabilistic (d) lifecert feed ingest --source hospital_visit probabilistic.csv --report
                (e) Splink, DuckDB backend (bench/peers/splink_probabilistic.py)
Every lifecert run starts from a copy of the same freshly imported database.

Data come from `cargo run --release -p lifecert-matching --example feedgen` into the work
folder (default target/feed-bench/data-P-E-Q-sSEED, reused when present). The peers run in
bench/.venv (created by bench/peers/setup.sh when missing). Standard library only.
Prints the machine, a table of the runs and the quality tables, and writes everything as
JSON to the work folder. It asserts nothing about timing. The table also gives each run's
CPU seconds and the load average just before it: on a shared machine, --quiet-load waits
for the others' builds to finish first. Before each run the file system is synced, so that
no run pays for writing out what the run before left dirty.
"""

import argparse
import base64
import csv
import datetime
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_PYTHON = os.path.join(ROOT, "bench", ".venv", "bin", "python")
SOURCE = "hospital_visit"
# lifecert's default `probable` threshold (crates/matching Thresholds::default), in bits.
LIFECERT_THRESHOLDS = [8, 10, 12, 14, 16, 18, 20, 22, 24, 26]
AIM_PRECISION, AIM_RECALL = 0.999, 0.98


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def fail(msg):
    log(f"error: {msg}")
    sys.exit(1)


# ---------------------------------------------------------------------------- processes


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


QUIET = {"below": 0.0, "max_wait": 600.0}


def wait_for_quiet():
    """With --quiet-load X: waits (at most --quiet-wait seconds) until the 1-minute load
    average is below X, so that other work on a shared machine skews the run less."""
    if QUIET["below"] <= 0:
        return
    deadline = time.monotonic() + QUIET["max_wait"]
    load = loadavg()
    if load is not None and load >= QUIET["below"]:
        log(f"    waiting for the load average ({load:.2f}) to fall below {QUIET['below']}")
    while load is not None and load >= QUIET["below"] and time.monotonic() < deadline:
        time.sleep(5)
        load = loadavg()


def measure(argv, env=None, stdout_path=None, stderr_path=None, cwd=ROOT):
    """Runs argv to completion; returns (exit code, seconds, peak RSS in MiB, stdout text,
    CPU seconds (user + system) of the process, the 1-minute load average before it)."""
    out = open(stdout_path, "wb") if stdout_path else subprocess.DEVNULL
    err = open(stderr_path, "wb") if stderr_path else subprocess.DEVNULL
    # The pages the previous run (or the copy of the database) left dirty are written out
    # first, so that no run pays for the writeback of another.
    os.sync()
    wait_for_quiet()
    load = loadavg()
    try:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=err, cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
    finally:
        for f in (out, err):
            if f is not subprocess.DEVNULL:
                f.close()
    text = ""
    if stdout_path:
        with open(stdout_path, "rb") as f:
            text = f.read().decode("utf-8", "replace")
    cpu = usage.ru_utime + usage.ru_stime
    return proc.returncode, seconds, usage.ru_maxrss / 1024.0, text, cpu, load


def last_json(text):
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    return None


def tail(path, n=15):
    try:
        with open(path, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
        return "\n".join(lines[-n:])
    except OSError:
        return ""


def run_checked(argv, what, **kw):
    log(f"  $ {' '.join(argv)}")
    r = subprocess.run(argv, cwd=ROOT, **kw)
    if r.returncode != 0:
        fail(f"{what} failed (exit {r.returncode})")
    return r


# ---------------------------------------------------------------------------- machine


def machine():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = 0
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem = int(line.split()[1]) // 1024
    except OSError:
        pass
    def git(*a):
        r = subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True)
        return r.stdout.strip()
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return {
        "host": platform.node(),
        "kernel": f"{platform.system()} {platform.release()} {platform.machine()}",
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "memory_mib": mem,
        "commit": git("rev-parse", "--short", "HEAD") + (" (with uncommitted changes)" if dirty else ""),
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


# ---------------------------------------------------------------------------- setup


def lifecert_binary(args):
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    binary = os.path.join(target, "release", "lifecert")
    if args.build or not os.path.exists(binary):
        log("building lifecert (release)")
        run_checked(["cargo", "build", "--release", "-p", "lifecert"], "cargo build")
    return binary


def generate(args, data):
    manifest = os.path.join(data, "manifest.json")
    if os.path.exists(manifest):
        log(f"reusing the data in {data}")
    else:
        log(f"generating the data into {data}")
        run_checked(
            ["cargo", "build", "--release", "-p", "lifecert-matching", "--example", "feedgen"],
            "building feedgen",
        )
        target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
        tmp = data + ".partial"
        shutil.rmtree(tmp, ignore_errors=True)
        started = time.perf_counter()
        run_checked(
            [
                os.path.join(target, "release", "examples", "feedgen"),
                "--out", tmp,
                "--pensioners", str(args.pensioners),
                "--exact", str(args.exact),
                "--probabilistic", str(args.probabilistic),
                "--seed", str(args.seed),
            ],
            "feedgen",
        )
        log(f"  generated in {time.perf_counter() - started:.1f} s")
        os.rename(tmp, data)
    with open(manifest) as f:
        return json.load(f)


def ensure_venv(args):
    if args.skip_splink and args.skip_duckdb:
        return
    if not os.path.exists(VENV_PYTHON):
        log("creating bench/.venv with the peers (bench/peers/setup.sh)")
        run_checked(["bash", os.path.join(ROOT, "bench", "peers", "setup.sh")], "setup.sh")


def peer_versions():
    if not os.path.exists(VENV_PYTHON):
        return {}
    r = subprocess.run(
        [VENV_PYTHON, "-c", "import duckdb, splink; print(duckdb.__version__, splink.__version__)"],
        capture_output=True, text=True,
    )
    parts = r.stdout.split()
    return {"duckdb": parts[0], "splink": parts[1]} if len(parts) == 2 else {}


class Backend:
    """A database that holds the imported roll, and fresh equal copies of it for each run."""

    def __init__(self, name, env):
        self.name = name
        self.env = env

    def run_env(self, url):
        env = dict(self.env)
        env["LIFECERT_DATABASE_URL"] = url
        return env


class Sqlite(Backend):
    def __init__(self, env, folder):
        super().__init__("sqlite", env)
        self.folder = folder
        self.base = os.path.join(folder, "base.db")

    def base_url(self):
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(self.base + suffix):
                os.remove(self.base + suffix)
        return "sqlite://" + self.base

    def fresh_copy(self, name):
        """A copy of the imported database (with its -wal/-shm if any): every run starts equal."""
        path = os.path.join(self.folder, name + ".db")
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)
            if os.path.exists(self.base + suffix):
                shutil.copyfile(self.base + suffix, path + suffix)
        return "sqlite://" + path

    def size_mib(self, url):
        path = url[len("sqlite://"):]
        return sum(
            os.path.getsize(path + s) for s in ("", "-wal", "-shm") if os.path.exists(path + s)
        ) / 2**20

    def drop(self, url):
        path = url[len("sqlite://"):]
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)


class Postgres(Backend):
    """Copies are CREATE DATABASE ... TEMPLATE of the imported one (needs psql)."""

    def __init__(self, env, url):
        super().__init__("postgres", env)
        if not shutil.which("psql"):
            fail("--postgres needs psql (PostgreSQL client tools)")
        self.admin = url
        self.base = "lifecert_feed_bench_base"

    def url_for(self, db):
        head, _, rest = self.admin.rpartition("/")
        query = ""
        if "?" in rest:
            query = "?" + rest.split("?", 1)[1]
        return f"{head}/{db}{query}"

    def psql(self, sql):
        r = subprocess.run(
            ["psql", self.admin, "-v", "ON_ERROR_STOP=1", "-qAtc", sql],
            capture_output=True, text=True,
        )
        if r.returncode != 0:
            fail(f"psql: {r.stderr.strip()}")
        return r.stdout.strip()

    def base_url(self):
        self.psql(f"DROP DATABASE IF EXISTS {self.base} WITH (FORCE)")
        self.psql(f"CREATE DATABASE {self.base}")
        return self.url_for(self.base)

    def fresh_copy(self, name):
        db = "lifecert_feed_bench_" + name.replace("-", "_")
        self.psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        self.psql(f"CREATE DATABASE {db} TEMPLATE {self.base}")
        return self.url_for(db)

    def size_mib(self, url):
        db = url.rpartition("/")[2].split("?")[0]
        return int(self.psql(f"SELECT pg_database_size('{db}')")) / 2**20

    def drop(self, url):
        db = url.rpartition("/")[2].split("?")[0]
        self.psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


# ---------------------------------------------------------------------------- lifecert


def import_roll(binary, backend, data, runs, manifest):
    url = backend.base_url()
    code, seconds, rss, out, cpu, load = measure(
        [binary, "import", "recipients", os.path.join(data, "pensioners.csv"), "--json"],
        env=backend.run_env(url),
        stdout_path=os.path.join(runs, f"{backend.name}-import.out"),
        stderr_path=os.path.join(runs, f"{backend.name}-import.err"),
    )
    summary = last_json(out) or {}
    if code != 0 or summary.get("inserted") != manifest["pensioners"]:
        fail(
            f"importing the roll into {backend.name} failed (exit {code}): {summary}\n"
            + tail(os.path.join(runs, f"{backend.name}-import.err"))
        )
    return {"seconds": seconds, "peak_mib": rss, "cpu_seconds": cpu, "load_before": load,
            "summary": summary}


def check_sequential_ids(binary, backend, data, runs, seed):
    """Import gives a fresh database's pensioners the ids 1, 2, … in file order; the quality
    program relies on that to map a label's ID number to lifecert's recipient_id. Checked on
    a random sample with `recipient show`, on a throwaway copy."""
    with open(os.path.join(data, "pensioners.csv"), newline="", encoding="utf-8") as f:
        ids = [row["id_number"] for row in csv.DictReader(f)]
    rng = random.Random(seed)
    sample = sorted(set([0, len(ids) - 1] + rng.sample(range(len(ids)), min(50, len(ids)))))
    url = backend.fresh_copy("idcheck")
    env = backend.run_env(url)
    for i in sample:
        r = subprocess.run(
            [binary, "recipient", "show", "--id-number", ids[i], "--json"],
            env=env, capture_output=True, text=True, cwd=ROOT,
        )
        shown = last_json(r.stdout) or {}
        if shown.get("recipient_id") != i + 1:
            fail(
                f"recipient_id is not the line order of pensioners.csv: line {i + 2} "
                f"({ids[i][:6]}…) shows {shown.get('recipient_id')!r}, expected {i + 1} "
                f"(exit {r.returncode}: {r.stderr.strip()[:300]})"
            )
    backend.drop(url)
    log(f"  recipient_id = line order: confirmed on {len(sample)} pensioners")
    return {id_number: i + 1 for i, id_number in enumerate(ids)}, ids


def has_dry_run(binary):
    r = subprocess.run([binary, "feed", "ingest", "--help"], capture_output=True, text=True)
    return "--dry-run" in r.stdout


def lifecert_ingest(binary, backend, runs, name, feed, extra):
    url = backend.fresh_copy(name)
    out = os.path.join(runs, f"{backend.name}-{name}.out")
    err = os.path.join(runs, f"{backend.name}-{name}.err")
    argv = [binary, "feed", "ingest", "--source", SOURCE, feed, "--json", *extra]
    log(f"  $ {' '.join(argv)}")
    code, seconds, rss, text, cpu, load = measure(
        argv, env=backend.run_env(url), stdout_path=out, stderr_path=err)
    summary = last_json(text)
    result = {"exit": code, "seconds": seconds, "peak_mib": rss, "cpu_seconds": cpu,
              "load_before": load, "summary": summary}
    if code != 0:
        result["error"] = tail(err)
        log(f"    failed (exit {code}): {tail(err, 5)}")
    else:
        result["database_mib"] = backend.size_mib(url)
    backend.drop(url)
    return result


# ---------------------------------------------------------------------------- peers


def peer(runs, name, argv):
    out = os.path.join(runs, f"{name}.out")
    err = os.path.join(runs, f"{name}.err")
    log(f"  $ {' '.join(argv)}")
    code, seconds, rss, text, cpu, load = measure(argv, stdout_path=out, stderr_path=err)
    result = {"exit": code, "seconds": seconds, "peak_mib": rss, "cpu_seconds": cpu,
              "load_before": load, "summary": last_json(text)}
    if code != 0:
        result["error"] = tail(err)
        log(f"    failed (exit {code}): {tail(err, 5)}")
    return result


# ---------------------------------------------------------------------------- quality


def read_labels(data):
    with open(os.path.join(data, "probabilistic_labels.csv"), newline="", encoding="utf-8") as f:
        return {row["record_id"]: (row["true_id_number"] or None) for row in csv.DictReader(f)}


def lifecert_quality(report_path, labels, recipient_of):
    """Precision, recall and F1 from lifecert's --report and the labels."""
    truth = {rid: (recipient_of[t] if t else None) for rid, t in labels.items()}
    n_true = sum(1 for t in truth.values() if t is not None)
    rows = {}
    with open(report_path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            rows[row["record_id"]] = row
    missing = [rid for rid in truth if rid not in rows]
    if missing:
        fail(f"the report has no line for {len(missing)} records, e.g. {missing[:3]}")

    def candidate(row):
        return int(row["recipient_id"]) if row["recipient_id"] else None

    def score(row):
        return float(row["score"]) if row["score"] else None

    def stats(selected):
        tp = sum(1 for rid in selected if candidate(rows[rid]) == truth[rid] and truth[rid] is not None)
        n = len(selected)
        precision = tp / n if n else 1.0
        recall = tp / n_true if n_true else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return {"predicted": n, "true_positives": tp, "false_positives": n - tp,
                "precision": precision, "recall": recall, "f1": f1}

    classes = {}
    for rid, row in rows.items():
        kind = "true" if truth.get(rid) is not None else "decoy"
        c = row["class"]
        if kind == "true" and c in ("probable", "possible"):
            c += " (right)" if candidate(row) == truth[rid] else " (wrong)"
        classes.setdefault(kind, {}).setdefault(c, 0)
        classes[kind][c] += 1

    with_candidate = [rid for rid, row in rows.items() if row["class"] in ("probable", "possible") and candidate(row) is not None and score(row) is not None]
    probable = [rid for rid in with_candidate if rows[rid]["class"] == "probable"]
    table = []
    for th in LIFECERT_THRESHOLDS:
        table.append({
            "threshold": th,
            "any": stats([rid for rid in with_candidate if score(rows[rid]) >= th]),
            "probable": stats([rid for rid in probable if score(rows[rid]) >= th]),
        })
    return {
        "n_true": n_true,
        "n_decoys": len(truth) - n_true,
        "probable": stats(probable),
        "probable_or_possible": stats(with_candidate),
        "classes": classes,
        "table": table,
        "false_probable": [rid for rid in probable if candidate(rows[rid]) != truth[rid]],
        "rows": rows,
        "truth": truth,
    }


def explain_errors(q, data, ids, limit):
    """The records lifecert got wrong at `probable`, with what it matched and what was true,
    and the true records it left below `probable`, grouped by why (the kind of noise)."""
    feed = {}
    with open(os.path.join(data, "probabilistic.csv"), newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            feed[row["record_id"]] = row
    roll = {}
    wanted = set()
    for rid in q["false_probable"]:
        for r in (q["rows"][rid]["recipient_id"], q["truth"][rid]):
            if r:
                wanted.add(int(r))
    for rid, t in q["truth"].items():
        if t is not None and q["rows"][rid]["class"] != "probable":
            wanted.add(t)
    with open(os.path.join(data, "pensioners.csv"), newline="", encoding="utf-8") as f:
        for i, row in enumerate(csv.DictReader(f), start=1):
            if i in wanted:
                roll[i] = row

    def pensioner(i):
        if not i:
            return "-"
        p = roll.get(int(i))
        if not p:
            return f"#{i}"
        idn = p["id_number"]
        sex = "M" if int(idn[16]) % 2 else "F"
        return f"#{i} {p['name']} {idn[6:10]}-{idn[10:12]}-{idn[12:14]} {sex} {p['region_code']}"

    def record(rid):
        r = feed[rid]
        return f"{rid} {r['name']} {r['birth_date']} {r['gender'] or '?'} {r['region_code'] or '?'}"

    wrong = []
    for rid in q["false_probable"][:limit]:
        row = q["rows"][rid]
        wrong.append({
            "record": record(rid),
            "score": row["score"],
            "matched": pensioner(row["recipient_id"]),
            "truth": pensioner(q["truth"][rid]) if q["truth"][rid] else "decoy (not a pensioner)",
        })

    # Why true records were missed: compare the record with its true pensioner.
    missed = {}
    examples = {}
    for rid, t in q["truth"].items():
        if t is None or q["rows"][rid]["class"] == "probable":
            continue
        r, p = feed[rid], roll.get(t)
        if not p:
            continue
        idn = p["id_number"]
        born = f"{idn[6:10]}-{idn[10:12]}-{idn[12:14]}"
        why = []
        if r["name"] != p["name"]:
            why.append("name written differently")
        if r["birth_date"] != born:
            y, m, d = born.split("-")
            if r["birth_date"] == f"{y}-{d}-{m}":
                why.append("day/month swapped")
            else:
                why.append("birth date ±1 day")
        if not r["gender"]:
            why.append("no gender")
        if r["region_code"] != p["region_code"]:
            why.append("region to the city only")
        key = f"{q['rows'][rid]['class']}: " + (", ".join(why) or "no noise")
        missed[key] = missed.get(key, 0) + 1
        if len(examples.setdefault(key, [])) < 2:
            examples[key].append(f"{record(rid)} score {q['rows'][rid]['score'] or '-'} "
                                 f"({q['rows'][rid]['reason']}); truth {pensioner(t)}"
                                 + (f", matched {pensioner(q['rows'][rid]['recipient_id'])}"
                                    if q['rows'][rid]['recipient_id'] and int(q['rows'][rid]['recipient_id']) != t else ""))
    missed = dict(sorted(missed.items(), key=lambda kv: -kv[1]))
    return {"false_probable": wrong, "missed_true": missed, "missed_examples": examples}


# ---------------------------------------------------------------------------- output


def fmt_int(n):
    return f"{n:,}" if isinstance(n, int) else "-"


def print_machine(m, versions, binary_version):
    print("== machine")
    print(f"host:      {m['host']}, {m['kernel']}")
    print(f"cpus:      {m['cpus']} x {m['cpu']}")
    print(f"memory:    {m['memory_mib']} MiB")
    print(f"commit:    {m['commit']}")
    print(f"lifecert:  {binary_version}")
    print(f"peers:     duckdb {versions.get('duckdb', '-')}, splink {versions.get('splink', '-')} (python {m['python']})")
    print(f"date:      {m['date']}")


def print_runs(runs_table):
    print()
    print("== runs (wall time of the whole process; peak MiB = its maximum resident set)")
    head = f"{'workload':<14} {'tool':<34} {'records':>11} {'seconds':>9} {'records/s':>11} {'peak MiB':>9} {'time ratio':>11} {'mem ratio':>10} {'CPU s':>8} {'load':>5}"
    print(head)
    print("-" * len(head))
    for r in runs_table:
        if r.get("skipped"):
            print(f"{r['workload']:<14} {r['tool']:<34} {'':>11} skipped: {r['skipped']}")
            continue
        if r.get("exit", 0) != 0:
            print(f"{r['workload']:<14} {r['tool']:<34} {'':>11} FAILED (exit {r['exit']})")
            continue
        rate = r["records"] / r["seconds"] if r["seconds"] else 0
        ratio = r.get("time_ratio")
        mratio = r.get("mem_ratio")
        print(
            f"{r['workload']:<14} {r['tool']:<34} {fmt_int(r['records']):>11} {r['seconds']:>9.2f} "
            f"{rate:>11,.0f} {r['peak_mib']:>9.1f} "
            f"{(f'{ratio:.2f}x' if ratio else ''):>11} {(f'{mratio:.2f}x' if mratio else ''):>10}"
            f" {r['cpu_seconds']:>8.1f} {(r['load_before'] if r['load_before'] is not None else float('nan')):>5.2f}"
        )
    print("time ratio / mem ratio: lifecert / the peer on the same workload (below 1: lifecert is faster / smaller)")
    print("CPU s: user + system seconds of the process (over 1 s per second = more than one core);")
    print("load: 1-minute load average just before the run (other work on the machine skews the times)")


def print_quality(q):
    print()
    print(f"== quality: lifecert on the ID-less feed ({q['n_true']:,} true records, {q['n_decoys']:,} decoys)")
    p = q["probable"]
    print(
        f"at lifecert's `probable` class (default threshold 18 bits and margin): precision {p['precision']:.5f}, "
        f"recall {p['recall']:.5f}, F1 {p['f1']:.5f} ({p['true_positives']:,} right, {p['false_positives']:,} wrong)"
        f"  aim: precision >= {AIM_PRECISION}, recall >= {AIM_RECALL}: "
        + ("met" if p["precision"] >= AIM_PRECISION and p["recall"] >= AIM_RECALL else "NOT met")
    )
    pp = q["probable_or_possible"]
    print(
        f"probable or possible (put before a person): precision {pp['precision']:.5f}, recall {pp['recall']:.5f}, F1 {pp['f1']:.5f}"
    )
    print("classes: " + "; ".join(
        f"{kind} records: " + ", ".join(f"{c} {n:,}" for c, n in sorted(cs.items()))
        for kind, cs in sorted(q["classes"].items(), reverse=True)))
    print()
    print("score >= t   | any reported candidate (probable or possible)        | probable only (as if `probable` were t)")
    print("   (bits)    | predicted  precision    recall        F1     fp      | predicted  precision    recall        F1     fp")
    for row in q["table"]:
        a, b = row["any"], row["probable"]
        print(
            f"{row['threshold']:>9}    | {a['predicted']:>9,} {a['precision']:>10.5f} {a['recall']:>9.5f} {a['f1']:>9.5f} {a['false_positives']:>6,}"
            f"      | {b['predicted']:>9,} {b['precision']:>10.5f} {b['recall']:>9.5f} {b['f1']:>9.5f} {b['false_positives']:>6,}"
        )


def print_splink_quality(splink):
    print()
    print(f"== quality: Splink on the same feed (each record's best pair; {splink.get('pairs_scored_at_min_threshold', 0):,} pairs scored)")
    print("match prob >= | predicted  precision    recall        F1     fp")
    for row in splink["quality"]:
        print(
            f"{row['threshold']:>13} | {row['predicted']:>9,} {row['precision']:>10.5f} {row['recall']:>9.5f} {row['f1']:>9.5f} {row['false_positives']:>6,}"
        )


def print_errors(e):
    if e["false_probable"]:
        print()
        print("lifecert's wrong `probable` matches (record: name, birth date, gender, region -> matched pensioner; truth):")
        for w in e["false_probable"]:
            print(f"  {w['record']}  score {w['score']}\n      matched {w['matched']}\n      truth   {w['truth']}")
    if e["missed_true"]:
        print()
        print("true records lifecert left below `probable`, by class and what differs from the roll:")
        for k, n in e["missed_true"].items():
            print(f"  {n:>6,}  {k}")
            for ex in e["missed_examples"].get(k, []):
                print(f"            e.g. {ex}")


# ---------------------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pensioners", type=int, default=1_000_000)
    ap.add_argument("--exact", type=int, default=10_000_000)
    ap.add_argument("--probabilistic", type=int, default=133_000)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--work", default=os.path.join(ROOT, "target", "feed-bench"))
    ap.add_argument("--build", action="store_true", help="rebuild the release binary first (cargo build --release -p lifecert)")
    ap.add_argument("--skip-splink", action="store_true")
    ap.add_argument("--skip-duckdb", action="store_true")
    ap.add_argument("--skip-exact", action="store_true", help="only the probabilistic workload")
    ap.add_argument("--postgres", metavar="URL", help="also run lifecert on PostgreSQL (an admin URL; needs psql)")
    ap.add_argument("--show-errors", type=int, default=10, help="wrong probable matches to print")
    ap.add_argument("--quiet-load", type=float, default=0.0, metavar="X",
                    help="before each measured run, wait until the 1-minute load average is below X")
    ap.add_argument("--quiet-wait", type=float, default=600.0, metavar="SECONDS",
                    help="the longest wait for --quiet-load (then it runs anyway; the load is printed)")
    args = ap.parse_args()
    QUIET["below"], QUIET["max_wait"] = args.quiet_load, args.quiet_wait

    work = os.path.abspath(args.work)
    data = os.path.join(work, f"data-{args.pensioners}-{args.exact}-{args.probabilistic}-s{args.seed}")
    runs = os.path.join(work, "runs")
    os.makedirs(runs, exist_ok=True)

    binary = lifecert_binary(args)
    ensure_venv(args)
    manifest = generate(args, data)
    versions = peer_versions()
    binary_version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.strip()
    m = machine()

    key_file = os.path.join(work, "master.key")
    if not os.path.exists(key_file):
        with open(key_file, "w") as f:
            f.write(base64.b64encode(os.urandom(32)).decode())
    with open(key_file) as f:
        key = f.read().strip()
    env = dict(os.environ)
    env.update({"LIFECERT_MASTER_KEY": key, "LIFECERT_ACTOR": "feed-bench"})
    env.pop("LIFECERT_CONFIG", None)
    env.pop("LIFECERT_MASTER_KEY_FILE", None)

    backends = [Sqlite(env, runs)]
    if args.postgres:
        backends.append(Postgres(env, args.postgres))

    exact_csv = os.path.join(data, "exact.csv")
    prob_csv = os.path.join(data, "probabilistic.csv")
    labels = read_labels(data)
    dry_run = has_dry_run(binary)
    results = {"machine": m, "lifecert": binary_version, "peers": versions, "manifest": manifest,
               "data": data, "dry_run_available": dry_run, "backends": {}}
    table = []
    recipient_of = None
    ids = None
    quality = None
    errors = None

    for backend in backends:
        log(f"[{backend.name}] importing {manifest['pensioners']:,} pensioners")
        imported = import_roll(binary, backend, data, runs, manifest)
        log(f"  {imported['seconds']:.1f} s, {imported['peak_mib']:.0f} MiB")
        if recipient_of is None:
            recipient_of, ids = check_sequential_ids(binary, backend, data, runs, args.seed)
        b = {"import": imported}
        table.append({"workload": "setup", "tool": f"lifecert import ({backend.name})",
                      "records": manifest["pensioners"], **imported})
        if not args.skip_exact:
            if dry_run:
                b["exact_dry_run"] = lifecert_ingest(binary, backend, runs, "exact-dry", exact_csv, ["--dry-run"])
                table.append({"workload": "exact-ID", "tool": f"lifecert --dry-run ({backend.name})",
                              "records": manifest["exact"], "key": "dry", **b["exact_dry_run"]})
            else:
                table.append({"workload": "exact-ID", "tool": f"lifecert --dry-run ({backend.name})",
                              "skipped": "this lifecert has no `feed ingest --dry-run`"})
            b["exact_ingest"] = lifecert_ingest(binary, backend, runs, "exact", exact_csv, [])
            table.append({"workload": "exact-ID", "tool": f"lifecert ingest ({backend.name})",
                          "records": manifest["exact"], "key": "full", **b["exact_ingest"]})
        report = os.path.join(runs, f"{backend.name}-probabilistic-report.csv")
        b["probabilistic"] = lifecert_ingest(binary, backend, runs, "probabilistic", prob_csv, ["--report", report])
        table.append({"workload": "probabilistic", "tool": f"lifecert ingest ({backend.name})",
                      "records": manifest["probabilistic"], "key": "prob", **b["probabilistic"]})
        if b["probabilistic"]["exit"] == 0:
            q = lifecert_quality(report, labels, recipient_of)
            b["quality"] = {k: v for k, v in q.items() if k not in ("rows", "truth")}
            if quality is None:
                quality = q
                errors = explain_errors(q, data, ids, args.show_errors)
                b["errors"] = errors
        results["backends"][backend.name] = b
        if isinstance(backend, Postgres):
            backend.drop(backend.url_for(backend.base))

    if not args.skip_exact and not args.skip_duckdb:
        log("[duckdb] exact-ID join and group-by")
        duck = peer(runs, "duckdb-exact", [
            VENV_PYTHON, os.path.join(ROOT, "bench", "peers", "duckdb_exact.py"),
            "--pensioners", os.path.join(data, "pensioners.csv"), "--feed", exact_csv,
            "--today", manifest["today"],
        ])
        results["duckdb_exact"] = duck
        table.append({"workload": "exact-ID", "tool": "DuckDB join + group-by",
                      "records": manifest["exact"], "peer": "exact", **duck})
    if not args.skip_splink:
        log("[splink] probabilistic linkage")
        spl = peer(runs, "splink-probabilistic", [
            VENV_PYTHON, os.path.join(ROOT, "bench", "peers", "splink_probabilistic.py"),
            "--pensioners", os.path.join(data, "pensioners.csv"), "--feed", prob_csv,
            "--labels", os.path.join(data, "probabilistic_labels.csv"),
        ])
        results["splink"] = spl
        table.append({"workload": "probabilistic", "tool": "Splink (DuckDB backend)",
                      "records": manifest["probabilistic"], "peer": "prob", **spl})

    # Ratios: each lifecert run against the peer of its workload.
    peers = {r["peer"]: r for r in table if r.get("peer") and r.get("exit", 1) == 0}
    for r in table:
        key = {"dry": "exact", "full": "exact", "prob": "prob"}.get(r.get("key"))
        if key in peers and r.get("exit", 1) == 0:
            r["time_ratio"] = r["seconds"] / peers[key]["seconds"]
            r["mem_ratio"] = r["peak_mib"] / peers[key]["peak_mib"]

    print_machine(m, versions, binary_version)
    print(f"data:      {manifest['pensioners']:,} pensioners; exact feed {manifest['exact']:,} records "
          f"({manifest['exact_unknown_ids']:,} unknown and {manifest['exact_mistyped_ids']:,} mistyped IDs); "
          f"ID-less feed {manifest['probabilistic']:,} ({manifest['probabilistic_true']:,} true, "
          f"{manifest['probabilistic_decoys']:,} decoys); seed {manifest['seed']}, generated for {manifest['today']}")
    print_runs(table)
    for r in table:
        s = r.get("summary")
        if s and r.get("key"):
            keys = ["records", "exact", "probable", "possible", "unmatched", "rejected",
                    "lives_certified", "reviews_opened", "duplicates_ignored", "recipients_matched"]
            print(f"  {r['tool']}: " + ", ".join(f"{k} {s[k]:,}" for k in keys if isinstance(s.get(k), int))
                  + (f"; database {r['database_mib']:.0f} MiB after" if r.get("database_mib") else ""))
        elif s and r.get("peer") == "exact":
            print(f"  DuckDB: {s['matched_records']:,} records matched, {s['persons']:,} pensioners, "
                  f"{s['persons_certified']:,} with weight >= 1.0 in the last 90 days ({s['threads']} threads)")
        elif s and r.get("peer") == "prob":
            print(f"  Splink: phases {s['timings']}")
    if quality:
        print_quality(quality)
    splink_summary = (results.get("splink") or {}).get("summary")
    if splink_summary:
        print_splink_quality(splink_summary)
    if errors:
        print_errors(errors)
    if not dry_run and not args.skip_exact:
        print("\nnote: this lifecert has no `feed ingest --dry-run`, so the matching-only run was skipped")

    results["table"] = table
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    for name in ("results.json", f"results-{stamp}.json"):
        with open(os.path.join(work, name), "w") as f:
            json.dump(results, f, indent=1, default=str)
    print(f"\nresults: {os.path.join(work, 'results.json')} (and results-{stamp}.json)")


if __name__ == "__main__":
    main()
