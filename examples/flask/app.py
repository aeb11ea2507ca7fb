"""The seed's Flask card, rebuilt on Handoff.

The card's version starts a thread in the request and answers at once; the
task is lost if the process dies, with no retry, status or history. Here the
route writes its domain row and hands the task to Handoff in the SAME
transaction (handoff.enqueue), then answers 202 at once. Handoff calls the
app's own /long-task endpoint (an `http` task, signed, retried with backoff)
to do the card's long task, and POSTs the final task to /callback, which
records the result on the domain row exactly once.

Run it next to Handoff, on the same Postgres:

    DATABASE_URL=postgres://... WEBHOOK_SECRET=whsec_... python3 app.py

Environment:
    DATABASE_URL      the app's Postgres, where Handoff is migrated too
    WEBHOOK_SECRET    the whsec_ secret Handoff signs with (its WEBHOOK_SECRET)
    HANDOFF_URL       Handoff's base URL, for the task links in answers
                      (default http://127.0.0.1:8080)
    PORT              where this app listens (default 5000; 0 picks a port)
    LONG_TASK_SECONDS how long the card's long task takes (default 5)
"""

import base64
import hashlib
import hmac
import json
import os
import time
import urllib.request

import contextlib

import psycopg2
import psycopg2.extras
import psycopg2.pool
from flask import Flask, abort, jsonify, request
from werkzeug.serving import WSGIRequestHandler

app = Flask(__name__)

DATABASE_URL = os.environ["DATABASE_URL"]
WEBHOOK_SECRET = os.environ["WEBHOOK_SECRET"]
HANDOFF_URL = os.environ.get("HANDOFF_URL", "http://127.0.0.1:8080").rstrip("/")
LONG_TASK_SECONDS = float(os.environ.get("LONG_TASK_SECONDS", "5"))

# How old a signed request may be, as the Standard Webhooks spec advises:
# an old capture replayed later is refused.
SIGNATURE_TOLERANCE_SECONDS = 5 * 60

SCHEMA = """
CREATE TABLE IF NOT EXISTS reports (
    id          bigserial PRIMARY KEY,
    created_at  timestamptz NOT NULL DEFAULT now(),
    task_id     bigint,
    status      text NOT NULL DEFAULT 'pending',
    result      jsonb,
    finished_at timestamptz
);
-- One row per delivery Handoff made to this app, keyed by webhook-id: a
-- redelivery of the same callback is recognised and changes nothing.
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    webhook_id  text PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now()
);
-- Every run of the long task, for the example's end-to-end test.
CREATE TABLE IF NOT EXISTS long_task_runs (
    report_id  bigint NOT NULL,
    webhook_id text NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now()
);
"""


# A few connections kept open: a new Postgres connection per request would
# cost more than the whole /process transaction.
POOL = psycopg2.pool.ThreadedConnectionPool(1, 8, DATABASE_URL)


@contextlib.contextmanager
def connect():
    """One transaction on a pooled connection: committed when the block
    ends, rolled back if it raises."""
    conn = POOL.getconn()
    try:
        with conn:
            yield conn
    finally:
        POOL.putconn(conn)


def report_progress(url, done, total, message):
    """Tells Handoff how far the task is, at the Handoff-Progress-URL of the
    request being served; the task's page shows it live. Best effort."""
    if not url:
        return
    body = json.dumps({"done": done, "total": total, "message": message}).encode()
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    try:
        urllib.request.urlopen(req, timeout=2).close()
    except OSError:
        pass  # progress is for people watching; the task goes on


def long_task(report_id, progress_url):
    """The card's long task: here, some seconds of work and a result."""
    steps = 4
    for step in range(steps):
        report_progress(progress_url, step, steps, f"step {step + 1} of {steps}")
        time.sleep(LONG_TASK_SECONDS / steps)
    report_progress(progress_url, steps, steps, "done")
    return {"report_id": report_id, "pages": 42}


def verify_signature():
    """Checks Handoff's Standard Webhooks signature on this request.

    Written from the spec, independently of Handoff's Go signer: the signed
    content is "<webhook-id>.<webhook-timestamp>.<body>", the key is the
    base64 after "whsec_", and webhook-signature lists "v1,<base64 HMAC-SHA256>"
    entries separated by spaces (two while secrets rotate). Returns the
    webhook-id.
    """
    msg_id = request.headers.get("webhook-id", "")
    timestamp = request.headers.get("webhook-timestamp", "")
    signatures = request.headers.get("webhook-signature", "")
    if not msg_id or not timestamp.isdigit() or not signatures:
        abort(401, "missing Standard Webhooks headers")
    if abs(time.time() - int(timestamp)) > SIGNATURE_TOLERANCE_SECONDS:
        abort(401, "webhook-timestamp too far from now")
    key = base64.b64decode(WEBHOOK_SECRET.removeprefix("whsec_"))
    content = msg_id.encode() + b"." + timestamp.encode() + b"." + request.get_data()
    expected = base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()
    for entry in signatures.split(" "):
        version, _, signature = entry.partition(",")
        if version == "v1" and hmac.compare_digest(signature, expected):
            return msg_id
    abort(401, "no valid signature")


@app.post("/process")
def process():
    """The card's route: answer at once, the long task runs elsewhere.

    The report row and the task commit together or not at all: if this
    transaction rolls back, Handoff never sees the task.
    """
    base = request.host_url.rstrip("/")
    with connect() as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO reports DEFAULT VALUES RETURNING id")
        (report_id,) = cur.fetchone()
        args = {
            "url": base + "/long-task",
            "method": "POST",
            "headers": {"Content-Type": "application/json"},
            "body": json.dumps({"report_id": report_id}),
            "timeout": 10,
        }
        cur.execute(
            "SELECT handoff.enqueue('http', %s, idempotency_key => %s, callback_url => %s)",
            (psycopg2.extras.Json(args), f"report-{report_id}", base + "/callback"),
        )
        (task_id,) = cur.fetchone()
        cur.execute("UPDATE reports SET task_id = %s WHERE id = %s", (task_id, report_id))
    # `with connect()` committed: the 202 means the task is durable.
    task_url = f"{HANDOFF_URL}/v1/tasks/{task_id}"
    return jsonify(report_id=report_id, task_id=task_id, task_url=task_url), 202, {"Location": task_url}


@app.post("/long-task")
def run_long_task():
    """Handoff's `http` task calls this; a 2xx completes the task."""
    webhook_id = verify_signature()
    report_id = request.get_json()["report_id"]
    with connect() as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO long_task_runs (report_id, webhook_id) VALUES (%s, %s)", (report_id, webhook_id))
        cur.execute("UPDATE reports SET status = 'running' WHERE id = %s AND result IS NULL", (report_id,))
    return jsonify(long_task(report_id, request.headers.get("Handoff-Progress-URL")))


@app.post("/callback")
def callback():
    """Handoff POSTs the final task here once it is completed, discarded or
    cancelled. Delivery is at least once: the webhook-id makes it once."""
    webhook_id = verify_signature()
    task = request.get_json()
    # Every Handoff task is signed with the same secret, so the signature
    # alone does not say this is Handoff's report on task["id"]: any key
    # holder could make an http task with such a body. Only Handoff's own
    # callbacks carry webhook-id "callback_<task id>_<callback id>".
    if not webhook_id.startswith(f"callback_{task.get('id')}_"):
        abort(403, "not Handoff's callback for this task")
    with connect() as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO webhook_deliveries (webhook_id) VALUES (%s) ON CONFLICT DO NOTHING", (webhook_id,))
        if cur.rowcount == 0:
            return "", 204  # seen before: already recorded
        result = None
        if task["state"] == "completed":
            # The http task's result is the response: {status, headers, body}.
            result = json.loads(task["result"]["body"])
        cur.execute(
            "UPDATE reports SET status = %s, result = %s, finished_at = now() WHERE task_id = %s AND finished_at IS NULL",
            (task["state"], psycopg2.extras.Json(result), task["id"]),
        )
    return "", 204


@app.get("/reports/<int:report_id>")
def report(report_id):
    with connect() as conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
        cur.execute("SELECT id, task_id, status, result, created_at, finished_at FROM reports WHERE id = %s", (report_id,))
        row = cur.fetchone()
    if row is None:
        abort(404)
    row["task_url"] = f"{HANDOFF_URL}/v1/tasks/{row['task_id']}"
    return jsonify(row)


def main():
    with connect() as conn, conn.cursor() as cur:
        cur.execute(SCHEMA)
    port = int(os.environ.get("PORT", "5000"))
    # Loopback only: this is an example, not a deployment (use a WSGI server
    # such as gunicorn there). Nagle's algorithm off: the development server
    # writes headers and body separately, and the client's delayed ACK would
    # hold the body back ~40 ms.
    WSGIRequestHandler.disable_nagle_algorithm = True
    app.run(host="127.0.0.1", port=port, threaded=True)


if __name__ == "__main__":
    main()
