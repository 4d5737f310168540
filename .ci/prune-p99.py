#!/usr/bin/env python3
"""Webhook latency while the service prunes, against the same load without pruning (docs/data.md).

  .ci/prune-p99.py DB SECS [VAR=VALUE ...]

Starts BIN (target/release/webhook-api) on a copy of DB with the given variables (for example
RETENTION_DAYS=20), sends new webhooks from CLIENTS (8) keep-alive connections for SECS seconds
from the moment it listens, and prints the start-up time, the webhooks per second, p50/p99/max
latency, and the service's pruning log lines.
"""
import hashlib, hmac, http.client, json, os, shutil, subprocess, sys, threading, time
sys.path.insert(0, os.path.dirname(__file__))
from importlib import import_module
ls = import_module("litestream")

db, secs = sys.argv[1], float(sys.argv[2])
extra = dict(a.split("=", 1) for a in sys.argv[3:])
work = db + ".p99"
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
copy = os.path.join(work, "app.db")
shutil.copy(db, copy)
port = ls.free_port()
env = {"DATABASE_URL": "sqlite:///" + copy, "WEBHOOK_SECRET": ls.SECRET, "PORT": str(port), "LOG_LEVEL": "INFO", **extra}
t0 = time.time()
p = subprocess.Popen([ls.BIN], env=env, stdout=open(os.path.join(work, "log"), "w"))
while True:
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        c.request("GET", "/health/live")
        if c.getresponse().status == 200:
            break
    except OSError:
        time.sleep(0.05)
started = time.time() - t0
lat = []
def client(k):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    n, until = 0, time.time() + secs
    while time.time() < until:
        body = json.dumps({"message_id": f"p99-{k}-{n}", "from": "+1555", "to": "+1", "ts": "2026-12-03T10:00:00Z", "text": f"latency probe {n}"}).encode()
        sig = hmac.new(ls.SECRET.encode(), body, hashlib.sha256).hexdigest()
        a = time.perf_counter()
        conn.request("POST", "/webhook", body, {"Content-Type": "application/json", "X-Signature": sig})
        r = conn.getresponse(); r.read()
        assert r.status == 200, r.status
        lat.append(time.perf_counter() - a)
        n += 1
threads = [threading.Thread(target=client, args=(k,)) for k in range(int(os.environ.get("CLIENTS", "8")))]
for t in threads: t.start()
for t in threads: t.join()
p.terminate(); p.wait()
lat.sort()
q = lambda f: round(lat[min(len(lat) - 1, int(f * len(lat)))] * 1e3, 2)
events = [l for l in open(os.path.join(work, "log")) if '"event"' in l and '"startup"' not in l and '"shutdown"' not in l]
print(json.dumps({"vars": extra, "listening_after_s": round(started, 2), "webhooks": len(lat), "per_s": round(len(lat) / secs),
                  "p50_ms": q(0.5), "p99_ms": q(0.99), "max_ms": q(1.0)}))
for l in events[:3] + (["..."] if len(events) > 6 else []) + events[-3:] if len(events) > 6 else events:
    print(l.strip()[:300])
shutil.rmtree(work, ignore_errors=True)
