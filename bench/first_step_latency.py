#!/usr/bin/env python3
"""bench/first_step_latency.py: push -> first step started latency of a running Gantry daemon.

With the daemon idle, sends PUSHES signed GitHub push deliveries one at a time. For each one it
takes the deployment id from the 202 answer ({"delivery": ..., "deployments": [id]}), polls
GET /api/v1/deployments/{id} every POLL_MS milliseconds until steps[0].started_at is set, and
records started_at minus the wall-clock time just before the request was sent. Before the next
push it waits for the deployment to end, so every push meets an idle daemon and an empty queue.

Two numbers per push:
  recorded  steps[0].started_at (written by the daemon, millisecond resolution) - send time
  observed  when this script first saw started_at set - send time (includes the poll interval
            and the commit that makes the row visible)

Usage (stdlib only; bench/webhooks.sh passes these):
  first_step_latency.py --url http://127.0.0.1:PORT --secret S --token T --repo bench/app \
      --branch main --sha <40 hex commit the app's repo has> --app bench [--pushes 20]

Prints a human summary and a final machine-readable line:
  LATENCY pushes=N p50_ms=F max_ms=F mean_ms=F observed_p50_ms=F observed_max_ms=F succeeded=N
Exits 1 when a push is not answered 202 or a deployment does not start within --timeout.
"""

import argparse
import hashlib
import hmac
import json
import math
import os
import statistics
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone

TERMINAL = {"succeeded", "failed", "superseded"}


def parse_ts(s):
    """RFC 3339 as chrono writes it ("2024-01-02T03:04:05.678Z", any fraction) -> epoch secs."""
    s = s.strip()
    if s.endswith("Z"):
        s = s[:-1] + "+00:00"
    # Normalise the fraction to 6 digits: older fromisoformat accepts only 3 or 6.
    date, _, rest = s.partition("T")
    tz = ""
    for sign in ("+", "-"):
        pos = rest.rfind(sign)
        if pos > 0:
            rest, tz = rest[:pos], rest[pos:]
            break
    if "." in rest:
        whole, frac = rest.split(".", 1)
        rest = whole + "." + (frac + "000000")[:6]
    return datetime.fromisoformat(f"{date}T{rest}{tz}").astimezone(timezone.utc).timestamp()


class Client:
    def __init__(self, url, token, secret):
        self.url = url.rstrip("/")
        self.token = token
        self.secret = secret.encode()

    def get(self, path):
        req = urllib.request.Request(
            self.url + path, headers={"Authorization": f"Bearer {self.token}"}
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.load(r)

    def push(self, body, delivery):
        sig = "sha256=" + hmac.new(self.secret, body, hashlib.sha256).hexdigest()
        req = urllib.request.Request(
            self.url + "/hooks/github",
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "X-GitHub-Event": "push",
                "X-GitHub-Delivery": delivery,
                "X-Hub-Signature-256": sig,
            },
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.load(r)
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(errors="replace")


def wait_idle(client, app, timeout):
    """Waits until the app has nothing queued or running (e.g. the tail of a load run)."""
    deadline = time.monotonic() + timeout
    while True:
        deps = client.get(f"/api/v1/deployments?app={app}&limit=5")
        busy = [d["id"] for d in deps if d["state"] not in TERMINAL]
        if not busy:
            return
        if time.monotonic() > deadline:
            sys.exit(f"first_step_latency: deployments {busy} still not finished after {timeout}s")
        time.sleep(0.05)


def pct(values, p):
    """Nearest-rank percentile."""
    v = sorted(values)
    k = max(0, min(len(v) - 1, math.ceil(p / 100 * len(v)) - 1))
    return v[k]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--secret", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--repo", required=True)
    ap.add_argument("--branch", default="main")
    ap.add_argument("--sha", required=True, help="a commit the app's repository has")
    ap.add_argument("--app", required=True)
    ap.add_argument("--pushes", type=int, default=20)
    ap.add_argument("--poll-ms", type=float, default=5.0)
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per wait")
    ap.add_argument("--settle", type=float, default=0.2,
                    help="idle seconds between a deployment's end and the next push")
    a = ap.parse_args()

    client = Client(a.url, a.token, a.secret)
    poll = a.poll_ms / 1000
    run = os.urandom(6).hex()
    wait_idle(client, a.app, a.timeout)

    recorded, observed, succeeded = [], [], 0
    for i in range(a.pushes):
        time.sleep(a.settle)
        body = json.dumps({
            "ref": f"refs/heads/{a.branch}",
            "after": a.sha,
            "deleted": False,
            "repository": {"full_name": a.repo},
            "commits": [],
            "pusher": {"name": "bench"},
        }, separators=(",", ":")).encode()
        sent = time.time()
        status, answer = client.push(body, f"latency-{run}-{i}")
        if status != 202 or not isinstance(answer, dict) or not answer.get("deployments"):
            sys.exit(f"first_step_latency: push {i} answered {status}: {answer}")
        dep_id = answer["deployments"][0]
        deadline = time.monotonic() + a.timeout
        while True:
            dep = client.get(f"/api/v1/deployments/{dep_id}")
            steps = dep.get("steps") or []
            if steps and steps[0].get("started_at"):
                seen = time.time()
                break
            if dep["state"] in TERMINAL:
                sys.exit(f"first_step_latency: deployment {dep_id} ended ({dep['state']}: "
                         f"{dep.get('reason')}) without starting a step")
            if time.monotonic() > deadline:
                sys.exit(f"first_step_latency: deployment {dep_id} started no step in {a.timeout}s")
            time.sleep(poll)
        rec_ms = (parse_ts(steps[0]["started_at"]) - sent) * 1000
        obs_ms = (seen - sent) * 1000
        recorded.append(rec_ms)
        observed.append(obs_ms)
        # Let the deployment finish so the next push meets an idle daemon.
        deadline = time.monotonic() + a.timeout
        while dep["state"] not in TERMINAL:
            if time.monotonic() > deadline:
                sys.exit(f"first_step_latency: deployment {dep_id} still {dep['state']} after {a.timeout}s")
            time.sleep(0.02)
            dep = client.get(f"/api/v1/deployments/{dep_id}")
        if dep["state"] == "succeeded":
            succeeded += 1
        print(f"  push {i + 1:>3}: deployment #{dep_id} first step started after "
              f"{rec_ms:7.1f} ms (seen after {obs_ms:7.1f} ms), ended {dep['state']}", flush=True)

    print(f"push -> first step started over {len(recorded)} pushes: "
          f"p50 {pct(recorded, 50):.1f} ms, max {max(recorded):.1f} ms "
          f"(seen by poller: p50 {pct(observed, 50):.1f} ms, max {max(observed):.1f} ms); "
          f"{succeeded}/{len(recorded)} deployments succeeded")
    print(f"LATENCY pushes={len(recorded)} p50_ms={pct(recorded, 50):.1f} "
          f"max_ms={max(recorded):.1f} mean_ms={statistics.mean(recorded):.1f} "
          f"observed_p50_ms={pct(observed, 50):.1f} observed_max_ms={max(observed):.1f} "
          f"succeeded={succeeded}")


if __name__ == "__main__":
    main()
