"""A real SMTP server for the end-to-end tests (e2e/tests/it/mail.rs).

Listens on 127.0.0.1:<port> with aiosmtpd and writes every message it accepts to <dir>/<n>.json:
the envelope's recipients, the From, To and Subject headers, the decoded text body, and the raw
message as received (written to a temporary name first, then renamed, so a reader never sees
half a message). Prints "ready <port>" once it accepts connections; runs until killed.

    python smtp_sink.py <dir>
"""

import email
import email.policy
import json
import os
import socket
import sys
import time

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, directory):
        self.directory = directory
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        name = os.path.join(self.directory, f"{self.count:04d}.json")
        raw = envelope.original_content or envelope.content
        message = email.message_from_bytes(raw, policy=email.policy.default)
        body = message.get_body(preferencelist=("plain",))
        record = {
            "envelope_to": list(envelope.rcpt_tos),
            "envelope_from": envelope.mail_from,
            "from": str(message["From"]),
            "to": str(message["To"]),
            "subject": str(message["Subject"]),
            "text": body.get_content() if body is not None else "",
            "raw": raw.decode("utf-8", "replace"),
        }
        with open(name + ".tmp", "w") as f:
            json.dump(record, f)
        os.rename(name + ".tmp", name)
        return "250 Message accepted for delivery"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    directory = sys.argv[1]
    os.makedirs(directory, exist_ok=True)
    port = free_port()
    controller = Controller(Sink(directory), hostname="127.0.0.1", port=port)
    controller.start()
    print(f"ready {port}", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
