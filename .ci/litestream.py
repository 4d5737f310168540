#!/usr/bin/env python3
"""Litestream against the real service, end to end (run by .ci/litestream; docs/data.md has the figures).

  kill     webhooks arrive while Litestream replicates to a file replica; the service and Litestream
           are killed with SIGKILL mid-load (the host dies); the replica is restored and checked:
           integrity_check, every restored row byte-identical to what was sent, and how many
           acknowledged (200) messages are missing. Exit 1 on a corrupt or differing row.
  ingest   webhooks per second for a few seconds without, then with Litestream attached.
  restore  restore time of a database of N rows (made with `gen`).
  gen      a database of N rows, written as the service writes them (aggregates, text index).

Environment: BIN (the service), LITESTREAM (the binary), SYNC_INTERVAL (the replica's, default 1s),
LOAD_SECS, CLIENTS. The Litestream configuration written here is the recipe of docs/data.md.
"""
import hashlib, hmac, http.client, json, os, signal, sqlite3, subprocess, sys, tempfile, threading, time

SECRET = "litestream-check"
BIN = os.environ.get("BIN", "target/release/webhook-api")
LITESTREAM = os.environ.get("LITESTREAM", "litestream")

CONFIG = """dbs:
  - path: {db}
    replica:
      type: file
      path: {replica}
      sync-interval: {sync}
"""


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_service(db, port, extra=None):
    env = {"DATABASE_URL": "sqlite:///" + db, "WEBHOOK_SECRET": SECRET, "PORT": str(port), "LOG_LEVEL": "ERROR"}
    env.update(extra or {})
    p = subprocess.Popen([BIN], env=env, stdout=subprocess.DEVNULL)
    for _ in range(500):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", "/health/live")
            if c.getresponse().status == 200:
                return p
        except OSError:
            time.sleep(0.02)
    raise SystemExit("the service did not start")


def start_litestream(work, db, sync):
    cfg = os.path.join(work, "litestream.yml")
    with open(cfg, "w") as f:
        f.write(CONFIG.format(db=db, replica=os.path.join(work, "replica"), sync=sync))
    p = subprocess.Popen([LITESTREAM, "replicate", "-config", cfg], stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "litestream.log"), "w"))
    time.sleep(1.0)
    return p, cfg


def load(port, secs, clients, prefix, sent, acked, stop):
    """Posts webhooks from `clients` keep-alive connections for `secs` or until `stop` is set."""
    def client(k):
        conn, n = None, 0
        until = time.time() + secs
        while time.time() < until and not stop.is_set():
            mid = f"{prefix}{k}-{n}"
            body = json.dumps({"message_id": mid, "from": f"+91{k:04d}{n % 97:03d}", "to": "+14155550100",
                               "ts": f"2025-01-15T10:{n // 60 % 60:02d}:{n % 60:02d}.{n % 1000:03d}Z",
                               "text": f"message {n} from client {k}: ünïcode and \"quotes\""}).encode()
            sig = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
            sent[mid] = json.loads(body)
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("POST", "/webhook", body, {"Content-Type": "application/json", "X-Signature": sig})
                r = conn.getresponse()
                r.read()
                if r.status == 200:
                    acked[mid] = time.time()
            except OSError:
                conn = None
                if stop.is_set():
                    return
                time.sleep(0.01)
            n += 1
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    return threads


def kill(sync):
    work = tempfile.mkdtemp(prefix="litestream-kill-")
    db = os.path.join(work, "data", "app.db")
    os.makedirs(os.path.dirname(db))
    port = free_port()
    service = start_service(db, port)
    ls, cfg = start_litestream(work, db, sync)
    sent, acked, stop = {}, {}, threading.Event()
    secs = float(os.environ.get("LOAD_SECS", "6"))
    threads = load(port, secs * 2, int(os.environ.get("CLIENTS", "8")), "k", sent, acked, stop)
    time.sleep(secs)
    # The host dies: both at once.
    for p in (service, ls):
        os.kill(p.pid, signal.SIGKILL)
    killed_at = time.time()
    stop.set()
    for t in threads:
        t.join()
    for p in (service, ls):
        p.wait()
    out = os.path.join(work, "restored.db")
    t0 = time.time()
    subprocess.run([LITESTREAM, "restore", "-config", cfg, "-o", out, db], check=True, stderr=subprocess.DEVNULL)
    took = time.time() - t0
    c = sqlite3.connect(out)
    check = c.execute("PRAGMA integrity_check").fetchone()[0]
    rows = c.execute("SELECT message_id, from_msisdn, to_msisdn, ts, text FROM messages").fetchall()
    differ = [r for r in rows if r[0] not in sent or (sent[r[0]]["from"], sent[r[0]]["to"], sent[r[0]]["ts"], sent[r[0]]["text"]) != r[1:]]
    restored = {r[0] for r in rows}
    missing = [m for m in acked if m not in restored]
    late = sorted(killed_at - acked[m] for m in missing)
    total = c.execute("SELECT n FROM counters WHERE name = 'messages'").fetchone()[0]
    log = open(os.path.join(work, "litestream.log")).read().lower()
    print(json.dumps({"sync_interval": sync, "acknowledged": len(acked), "restored": len(rows),
                      "acknowledged_missing": len(missing),
                      "missing_acked_within_s_of_kill": round(late[-1], 3) if late else None,
                      "integrity_check": check, "rows_differing": len(differ),
                      "counter_matches_rows": total == len(rows), "restore_s": round(took, 2),
                      "litestream_log_lines": {w: log.count(w) for w in ("snapshot", "checkpoint", "error")}}))
    ok = check == "ok" and not differ and total == len(rows) and len(rows) > 0
    subprocess.run(["rm", "-rf", work])
    return ok


def ingest():
    work = tempfile.mkdtemp(prefix="litestream-ingest-")
    secs = float(os.environ.get("LOAD_SECS", "5"))
    clients = int(os.environ.get("CLIENTS", "16"))
    result = {}
    for name in ("without", "with", "without again", "with again"):
        db = os.path.join(work, name.replace(" ", "-"), "app.db")
        os.makedirs(os.path.dirname(db))
        port = free_port()
        service = start_service(db, port)
        ls = start_litestream(os.path.dirname(db), db, os.environ.get("SYNC_INTERVAL", "1s"))[0] if name.startswith("with ") or name == "with" else None
        sent, acked, stop = {}, {}, threading.Event()
        for t in load(port, secs, clients, "i", sent, acked, stop):
            t.join()
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("GET", "/metrics")
        m = dict(l.rsplit(" ", 1) for l in c.getresponse().read().decode().splitlines() if l and not l.startswith("#"))
        commits, seconds = float(m["db_commit_seconds_count"]), float(m["db_commit_seconds_sum"])
        # What the writer spent per commit and per row (server side, whatever the client's speed).
        result[name] = {"per_s": round(len(acked) / secs), "ms_per_commit": round(seconds * 1e3 / commits, 3),
                        "rows_per_commit": round(float(m["db_batch_rows_sum"]) / commits, 1),
                        "us_per_row": round(seconds * 1e6 / float(m["db_batch_rows_sum"]), 1)}
        for p in (service, ls):
            if p:
                p.terminate()
                p.wait()
    rate = lambda k: result[k]["per_s"]
    row = lambda k: result[k]["us_per_row"]
    result["ratio with/without"] = round((rate("with") + rate("with again")) / (rate("without") + rate("without again")), 3)
    result["writer time per row with/without"] = round((row("with") + row("with again")) / (row("without") + row("without again")), 3)
    print(json.dumps({"webhooks_per_second": result, "clients": clients, "secs": secs}))
    subprocess.run(["rm", "-rf", work])


def gen(db, rows):
    """A database of `rows` messages as the service writes them: the service makes the schema,
    then rows, aggregates and the text index are filled in SQL in one go."""
    os.makedirs(os.path.dirname(db) or ".", exist_ok=True)
    port = free_port()
    p = start_service(db, port)
    p.terminate()
    p.wait()
    c = sqlite3.connect(db, isolation_level=None)
    c.execute("BEGIN")
    c.execute("""WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?)
        INSERT INTO messages SELECT printf('g%08d', i), printf('+91%010d', i % 1000), '+14155550100',
            strftime('%Y-%m-%dT%H:%M:%SZ', 1736935200 + i, 'unixepoch'), 'message ' || i || ' about the weather',
            strftime('%Y-%m-%dT%H:%M:%S.000Z', 1736935200 + i, 'unixepoch'),
            strftime('%Y-%m-%dT%H:%M:%S.000000000Z', 1736935200 + i, 'unixepoch'),
            'message ' || i || ' about the weather' FROM n""", (rows,))
    c.execute("COMMIT")
    c.executescript("""
        BEGIN;
        DELETE FROM hours; DELETE FROM senders;
        INSERT INTO hours SELECT substr(ts_key, 1, 13), count(*) FROM messages GROUP BY 1;
        INSERT INTO senders SELECT from_msisdn, count(*) FROM messages GROUP BY 1;
        UPDATE counters SET n = (SELECT count(*) FROM messages) WHERE name = 'messages';
        UPDATE counters SET n = (SELECT count(*) FROM senders) WHERE name = 'senders';
        INSERT INTO messages_fts (rowid, text_fold) SELECT rowid, text_fold FROM messages;
        UPDATE counters SET n = (SELECT max(rowid) FROM messages) WHERE name = 'fts_rowid';
        COMMIT;""")
    c.close()


def restore(rows):
    work = tempfile.mkdtemp(prefix="litestream-restore-")
    db = os.path.join(work, "data", "app.db")
    gen(db, rows)
    ls, cfg = start_litestream(work, db, "1s")
    # Replicated once it has written a snapshot: wait for the replica to stop growing.
    last, still = -1, 0
    while still < 3:
        time.sleep(1)
        size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(os.path.join(work, "replica")) for f in fs)
        still = still + 1 if size == last and size > 0 else 0
        last = size
    ls.terminate()
    ls.wait()
    out = os.path.join(work, "restored.db")
    t0 = time.time()
    subprocess.run([LITESTREAM, "restore", "-config", cfg, "-o", out, db], check=True, stderr=subprocess.DEVNULL)
    took = time.time() - t0
    n = sqlite3.connect(out).execute("SELECT count(*) FROM messages").fetchone()[0]
    print(json.dumps({"rows": n, "db_bytes": os.path.getsize(db), "replica_bytes": last, "restore_s": round(took, 2)}))
    subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "kill"
    if what == "kill":
        sys.exit(0 if kill(os.environ.get("SYNC_INTERVAL", "1s")) else 1)
    elif what == "ingest":
        ingest()
    elif what == "restore":
        restore(int(sys.argv[2]))
    elif what == "gen":
        gen(sys.argv[2], int(sys.argv[3]))
