"""A real webhook receiver for the integration tests (e2e/tests/it/webhooks.rs).

Every request to /hook/<name> is verified with the Standard Webhooks reference library against
the secrets the test gave for <name> (any one of them may sign), recorded, and answered as the
test scripted: a list of answers used in turn (then the default), each a status, an optional
delay and optional headers (Retry-After). The test drives it over HTTP:

  PUT  /control/<name>   {"secrets": ["whsec_..."], "answers": [{"status": 500}, ...],
                          "default": {"status": 200, "delay_ms": 0}}
  GET  /received/<name>  every request so far: id, timestamp, type, verified, body, status, at

Prints "ready <port>" once listening.
"""

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

lock = threading.Lock()
control = {}
received = {}


def verified(name, body, headers):
    secrets = control.get(name, {}).get("secrets", [])
    for secret in secrets:
        try:
            Webhook(secret).verify(body, headers)
            return True
        except WebhookVerificationError:
            continue
    return False


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body=b"", headers=None):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def body(self):
        n = int(self.headers.get("content-length") or 0)
        return self.rfile.read(n) if n else b""

    def do_PUT(self):
        name = self.path.removeprefix("/control/")
        data = json.loads(self.body() or b"{}")
        with lock:
            control[name] = data
            received.setdefault(name, [])
        self.reply(204)

    def do_GET(self):
        name = self.path.removeprefix("/received/")
        with lock:
            out = json.dumps(received.get(name, [])).encode()
        self.reply(200, out, {"content-type": "application/json"})

    def do_POST(self):
        name = self.path.removeprefix("/hook/")
        body = self.body()
        headers = {k.lower(): v for k, v in self.headers.items()}
        with lock:
            script = control.setdefault(name, {})
            answers = script.setdefault("answers", [])
            answer = answers.pop(0) if answers else script.get("default", {"status": 200})
            ok = verified(name, body, headers)
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None
            received.setdefault(name, []).append({
                "id": headers.get("webhook-id"),
                "timestamp": headers.get("webhook-timestamp"),
                "signature": headers.get("webhook-signature"),
                "content_type": headers.get("content-type"),
                "verified": ok,
                "body": parsed,
                "status": answer.get("status", 200),
                "at": time.time(),
            })
        delay = answer.get("delay_ms", 0)
        if delay:
            time.sleep(delay / 1000)
        self.reply(
            answer.get("status", 200),
            json.dumps({"ok": ok}).encode(),
            answer.get("headers"),
        )


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(f"ready {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
