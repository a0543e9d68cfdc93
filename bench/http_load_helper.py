#!/usr/bin/env python3
"""Small helpers for bench/http_load.sh (standard library only).

  totp URI                       the current 6-digit code for an otpauth:// URI (SHA-1, 30 s)
  free-port                      a free TCP port on 127.0.0.1
  wait-ready BASE SECONDS        polls BASE/readyz until it answers 200 (bounded)
  login BASE USER_JSON_FILE      logs in with `lifecert user add --json` output, prints the token
  pg-url URL DBNAME              the same PostgreSQL URL naming another database
  parse-wrk FILE                 requests/s, p50 and p99 (ms), non-2xx count from wrk --latency output
  ratio A B                      A / B, or "n/a"
  cpu-ticks PID...               summed utime+stime (clock ticks) of the processes and their threads
"""

import base64
import hashlib
import hmac
import json
import os
import re
import socket
import struct
import sys
import time
import urllib.error
import urllib.parse
import urllib.request


def totp_code(uri, at=None):
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(uri).query)
    secret = query["secret"][0].strip().replace(" ", "").upper()
    secret += "=" * (-len(secret) % 8)
    key = base64.b32decode(secret)
    period = int(query.get("period", ["30"])[0])
    digits = int(query.get("digits", ["6"])[0])
    step = int((time.time() if at is None else at) // period)
    mac = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[offset:offset + 4])[0] & 0x7FFFFFFF
    return str(value % (10 ** digits)).zfill(digits)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(base, seconds):
    deadline = time.monotonic() + float(seconds)
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(base + "/readyz", timeout=2) as r:
                if r.status == 200:
                    return 0
                last = f"HTTP {r.status}"
        except urllib.error.HTTPError as e:
            last = f"HTTP {e.code}"
        except OSError as e:
            last = str(e)
        time.sleep(0.2)
    print(f"server at {base} not ready after {seconds} s: {last}", file=sys.stderr)
    return 1


def login(base, user_file):
    with open(user_file, encoding="utf-8") as f:
        lines = [l for l in f.read().splitlines() if l.strip()]
    user = json.loads(lines[-1])
    body = json.dumps({
        "username": user["username"],
        "password": user["password"],
        "totp": totp_code(user["totp_uri"]),
    }).encode()
    req = urllib.request.Request(
        base + "/api/v1/auth/login", data=body, method="POST",
        headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            print(json.load(r)["token"])
            return 0
    except urllib.error.HTTPError as e:
        print(f"login failed: HTTP {e.code}: {e.read()[:500]!r}", file=sys.stderr)
        return 1


def pg_url(url, dbname):
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + dbname))


def to_ms(text):
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m|h)", text)
    if not m:
        return float("nan")
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}[m.group(2)]
    return float(m.group(1)) * scale


def parse_wrk(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    rps = re.search(r"^Requests/sec:\s+([0-9.]+)", text, re.M)
    p50 = re.search(r"^\s+50(?:\.000)?%\s+(\S+)", text, re.M)
    p99 = re.search(r"^\s+99(?:\.000)?%\s+(\S+)", text, re.M)
    total = re.search(r"^\s+(\d+) requests in", text, re.M)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    errors = re.search(r"Socket errors:(.*)$", text, re.M)
    print(" ".join([
        "rps=%s" % (rps.group(1) if rps else "nan"),
        "p50_ms=%.2f" % (to_ms(p50.group(1)) if p50 else float("nan")),
        "p99_ms=%.2f" % (to_ms(p99.group(1)) if p99 else float("nan")),
        "requests=%s" % (total.group(1) if total else "0"),
        "non2xx=%s" % (non2xx.group(1) if non2xx else "0"),
        "socket_errors=%s" % (errors.group(1).strip().replace(" ", "") if errors else "none"),
    ]))
    return 0


def ratio(a, b):
    try:
        a, b = float(a), float(b)
        print("%.1f%%" % (100.0 * a / b) if b > 0 else "n/a")
    except ValueError:
        print("n/a")
    return 0


def cpu_ticks(pids):
    total = 0
    for pid in pids:
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])  # utime, stime
        except OSError:
            pass
    print(total)
    return 0


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    cmd, args = argv[1], argv[2:]
    if cmd == "totp":
        print(totp_code(args[0]))
        return 0
    if cmd == "free-port":
        print(free_port())
        return 0
    if cmd == "wait-ready":
        return wait_ready(args[0], args[1])
    if cmd == "login":
        return login(args[0], args[1])
    if cmd == "pg-url":
        print(pg_url(args[0], args[1]))
        return 0
    if cmd == "parse-wrk":
        return parse_wrk(args[0])
    if cmd == "ratio":
        return ratio(args[0], args[1])
    if cmd == "cpu-ticks":
        return cpu_ticks(args)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
