#!/usr/bin/env python3
"""Crash and soak checks of a release build (issue-level durability targets; not part of CI).

  python3 bench/durability.py crash [--kills 200] [--bin target/release/edgestra]
      Starts the server on the embedded default project, writes threads, messages, vectors,
      workflow runs and scores from 4 clients, SIGKILLs the process at a random moment, starts it
      again on the same data directory and reads back every write that was acknowledged (a 2xx
      answer) before the kill. Repeats --kills times. Prints, per kind, how many acknowledged
      writes were checked and how many were missing (the target is 0), and whether the file
      opened every time.

  python3 bench/durability.py soak [--minutes 10] [--connections 64]
      Runs mixed reads and writes over 64 keep-alive connections and samples the server's
      resident memory every 10 s. Threads, messages, runs and scores are new records (stored on
      disk, so the file grows); vector writes replace vectors among 2,000 ids, since the vector
      index is held in memory and new ids would grow it by design. Prints requests, errors
      (target 0) and the RSS of the last sample against the one at half time (target: within
      ±10 %; the first half is warm-up, while the storage page cache fills).

Standard library only; the server runs on a loopback port with a temp data directory.
"""

import argparse
import http.client
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

AGENT = "assistant"  # the default project's agent with memory
WORKFLOW = "expense-approval"  # suspends at its first step: a durable run without a model
VECTOR_STORE = "default"
INDEX = "crashbench"
DIMENSION = 8
VECTOR_IDS = 2000  # the soak's vector writes replace vectors among this many ids


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, binary, data_dir):
        self.binary, self.data_dir = binary, data_dir
        self.proc = None
        self.port = None

    def start(self):
        self.port = free_port()
        # An empty working directory: no ./edgestra.yaml, so the embedded default project.
        self.proc = subprocess.Popen(
            [self.binary, "serve", "--port", str(self.port), "--data-dir", self.data_dir],
            cwd=os.path.dirname(self.data_dir),
            stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(os.path.dirname(self.data_dir), "server.log"), "ab"),
        )
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode} on start")
            try:
                status, _ = Client(self.port).call("GET", "/api")
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("the server did not answer within 30 s")

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        self.proc.terminate()
        self.proc.wait()

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0


class Client:
    """One keep-alive connection."""

    def __init__(self, port):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        headers = {"content-type": "application/json"} if data is not None else {}
        try:
            self.conn.request(method, path, body=data, headers=headers)
            resp = self.conn.getresponse()
            raw = resp.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()
            raise
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        self.last = (method, path, resp.status, str(body)[:200])
        return resp.status, body


# --- writes: each returns the record to check after a restart, or None when not acknowledged ---


def write_thread(c, rng):
    tid = f"t-{uuid.uuid4()}"
    status, _ = c.call("POST", f"/api/memory/threads?agentId={AGENT}",
                       {"resourceId": "bench", "threadId": tid, "title": "crash bench"})
    return ("thread", tid) if status == 200 else None


def write_message(c, rng, threads):
    if not threads:
        return None
    tid = rng.choice(threads)
    mid = f"m-{uuid.uuid4()}"
    msg = {"id": mid, "threadId": tid, "resourceId": "bench", "role": "user",
           "content": f"message {mid}", "type": "text"}
    status, _ = c.call("POST", f"/api/memory/save-messages?agentId={AGENT}", {"messages": [msg]})
    return ("message", (tid, mid)) if status == 200 else None


def write_vector(c, rng, vid=None):
    vid = vid or f"v-{uuid.uuid4()}"
    vec = [rng.uniform(-1, 1) for _ in range(DIMENSION)]
    status, _ = c.call("POST", f"/api/vector/{VECTOR_STORE}/upsert",
                       {"indexName": INDEX, "vectors": [vec], "ids": [vid], "metadata": [{"key": vid}]})
    return ("vector", vid) if status == 200 else None


def write_run(c, rng):
    rid = str(uuid.uuid4())
    status, body = c.call("POST", f"/api/workflows/{WORKFLOW}/start-async?runId={rid}",
                          {"inputData": {"item": "chair", "amount": rng.randint(1, 500)}})
    ok = status == 200 and isinstance(body, dict) and body.get("status") == "suspended"
    return ("run", rid) if ok else None


def write_score(c, rng):
    run_id = f"s-{uuid.uuid4()}"
    row = {"scorerId": "bench", "entityId": AGENT, "entityType": "AGENT", "runId": run_id,
           "score": rng.random(), "input": {}, "output": {}, "scorer": {}, "entity": {}, "source": "LIVE"}
    status, _ = c.call("POST", "/api/scores", {"score": row})
    return ("score", run_id) if status == 200 else None


def readable(c, kind, key):
    if kind == "thread":
        return c.call("GET", f"/api/memory/threads/{key}?agentId={AGENT}")[0] == 200
    if kind == "message":
        tid, mid = key
        status, body = c.call("GET", f"/api/memory/threads/{tid}/messages?agentId={AGENT}&limit=100000")
        return status == 200 and any(m.get("id") == mid for m in body.get("messages", []))
    if kind == "vector":
        status, body = c.call("POST", f"/api/vector/{VECTOR_STORE}/query",
                              {"indexName": INDEX, "queryVector": [0.0] * (DIMENSION - 1) + [1.0],
                               "topK": 1, "filter": {"key": key}})
        return status == 200 and [r["id"] for r in body.get("results", [])] == [key]
    if kind == "run":
        status, body = c.call("GET", f"/api/workflows/{WORKFLOW}/runs/{key}")
        return status == 200
    if kind == "score":
        status, body = c.call("GET", f"/api/scores/run/{key}")
        return status == 200 and len(body.get("scores", [])) == 1
    raise ValueError(kind)


def writer(port, seed, acked, threads, lock, stop):
    rng = random.Random(seed)
    c = Client(port)
    while not stop.is_set():
        pick = rng.random()
        try:
            if pick < 0.15:
                rec = write_thread(c, rng)
            elif pick < 0.45:
                with lock:
                    known = list(threads)
                rec = write_message(c, rng, known)
            elif pick < 0.7:
                rec = write_vector(c, rng)
            elif pick < 0.85:
                rec = write_run(c, rng)
            else:
                rec = write_score(c, rng)
        except (OSError, http.client.HTTPException):
            return  # the kill; what was not answered was not acknowledged
        if rec:
            with lock:
                acked.append(rec)
                if rec[0] == "thread":
                    threads.append(rec[1])


def crash(args):
    rng = random.Random(args.seed)
    work = tempfile.mkdtemp(prefix="edgestra-crash-")
    data = os.path.join(work, "data")
    server = Server(args.bin, data)
    server.start()
    status, _ = Client(server.port).call("POST", f"/api/vector/{VECTOR_STORE}/create-index",
                                         {"indexName": INDEX, "dimension": DIMENSION})
    assert status == 200, status
    threads = []
    checked = {k: 0 for k in ("thread", "message", "vector", "run", "score")}
    missing = {k: 0 for k in checked}
    opened = 0
    print(f"crash: {args.kills} kills, seed {args.seed}, data in {data}")
    for i in range(args.kills):
        acked, lock, stop = [], threading.Lock(), threading.Event()
        workers = [threading.Thread(target=writer, args=(server.port, rng.random(), acked, threads, lock, stop))
                   for _ in range(4)]
        for w in workers:
            w.start()
        time.sleep(rng.uniform(0.05, args.max_delay))
        server.kill()
        stop.set()
        for w in workers:
            w.join()
        server.start()  # raises if the file does not open
        opened += 1
        c = Client(server.port)
        for kind, key in acked:
            checked[kind] += 1
            if not readable(c, kind, key):
                missing[kind] += 1
                print(f"  kill {i + 1}: acknowledged {kind} {key} is missing")
        if (i + 1) % 20 == 0:
            print(f"  {i + 1} kills: {sum(checked.values())} acknowledged writes checked, "
                  f"{sum(missing.values())} missing")
    server.stop()
    print(f"crash: the data file opened after {opened}/{args.kills} kills")
    for kind in checked:
        print(f"  {kind:8} acknowledged {checked[kind]:6}  missing {missing[kind]}")
    return 0 if opened == args.kills and not any(missing.values()) else 1


def soak(args):
    work = tempfile.mkdtemp(prefix="edgestra-soak-")
    server = Server(args.bin, os.path.join(work, "data"))
    server.start()
    Client(server.port).call("POST", f"/api/vector/{VECTOR_STORE}/create-index",
                             {"indexName": INDEX, "dimension": DIMENSION})
    lock, stop = threading.Lock(), threading.Event()
    counts = {"requests": 0, "errors": 0}
    threads = []
    errors = []

    def worker(seed):
        rng = random.Random(seed)
        c = Client(server.port)
        while not stop.is_set():
            pick = rng.random()
            try:
                if pick < 0.1:
                    rec = write_thread(c, rng)
                    ok = rec is not None
                    if ok:
                        with lock:
                            threads.append(rec[1])
                elif pick < 0.3:
                    with lock:
                        known = list(threads[-50:])
                    ok = not known or write_message(c, rng, known) is not None
                elif pick < 0.45:
                    # Upserts over a fixed set of ids: the index is held in memory, so new ids
                    # would grow it by design; replacing vectors must not.
                    ok = write_vector(c, rng, f"v-{rng.randrange(VECTOR_IDS)}") is not None
                elif pick < 0.5:
                    ok = write_run(c, rng) is not None
                elif pick < 0.55:
                    ok = write_score(c, rng) is not None
                elif pick < 0.7:
                    ok = c.call("GET", f"/api/memory/threads/paginated?resourceId=bench&agentId={AGENT}&perPage=20")[0] == 200
                elif pick < 0.85:
                    ok = c.call("POST", f"/api/vector/{VECTOR_STORE}/query",
                                {"indexName": INDEX, "queryVector": [rng.uniform(-1, 1) for _ in range(DIMENSION)],
                                 "topK": 5})[0] == 200
                else:
                    ok = c.call("GET", f"/api/workflows/{WORKFLOW}/runs?limit=10")[0] == 200
            except (OSError, http.client.HTTPException) as e:
                ok = False
                c = Client(server.port)
                errors.append(repr(e))
            with lock:
                counts["requests"] += 1
                if not ok:
                    counts["errors"] += 1
                    if len(errors) < 20:
                        errors.append(getattr(c, "last", None))

    workers = [threading.Thread(target=worker, args=(i,)) for i in range(args.connections)]
    for w in workers:
        w.start()
    samples = []
    start = time.time()
    end = start + args.minutes * 60
    while time.time() < end:
        time.sleep(10)
        samples.append((time.time() - start, server.rss_kib()))
        print(f"  {samples[-1][0]:6.0f} s  RSS {samples[-1][1] / 1024:7.1f} MiB  "
              f"requests {counts['requests']}  errors {counts['errors']}")
    stop.set()
    for w in workers:
        w.join()
    server.stop()
    # Warm-up lasts until the storage page cache (64 MiB) is full, which takes minutes at this
    # rate; flatness is judged over the second half of the run, the first minute shown too.
    after_minute = [rss for t, rss in samples if t >= 60] or [samples[-1][1]]
    second_half = [rss for t, rss in samples if t >= args.minutes * 30] or [samples[-1][1]]
    first, last = second_half[0], second_half[-1]
    print(f"soak: {args.minutes} min at {args.connections} connections: {counts['requests']} requests, "
          f"{counts['errors']} errors")
    if errors:
        print(f"  first errors: {errors[:5]}")
    print(f"  RSS after the first minute {after_minute[0] / 1024:.1f} MiB, at half time {first / 1024:.1f} MiB, "
          f"at the end {last / 1024:.1f} MiB: ratio end / half time {last / first:.3f} "
          f"(median of the second half {statistics.median(second_half) / 1024:.1f} MiB)")
    flat = abs(last / first - 1) <= 0.10
    return 0 if counts["errors"] == 0 and flat else 1


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["crash", "soak"])
    p.add_argument("--bin", default="target/release/edgestra")
    p.add_argument("--kills", type=int, default=200)
    p.add_argument("--max-delay", type=float, default=1.5, help="longest time before a kill, in seconds")
    p.add_argument("--seed", type=int, default=int(time.time()))
    p.add_argument("--minutes", type=float, default=10)
    p.add_argument("--connections", type=int, default=64)
    args = p.parse_args()
    args.bin = os.path.abspath(args.bin)
    sys.exit(crash(args) if args.mode == "crash" else soak(args))


if __name__ == "__main__":
    main()
