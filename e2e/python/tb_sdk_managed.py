#!/usr/bin/env python3
"""A device managed through Stead, driven by ThingsBoard's Python device SDK (`tb-mqtt-client`).

Run by the end-to-end test `management::sdk_*` (e2e/tests/it/management.rs). Usage:

    tb_sdk_managed.py HOST PORT TOKEN EVENTS

It connects with the SDK's `TBDeviceMqttClient` (which subscribes to shared attribute updates and
server RPC on connect), reports the client attribute `fw`, asks for `fw` (client) and
`target_temp` (shared), and prints `{"event":"ready","attributes":{...}}` with the answer. Then it
prints one JSON line per shared-attribute update (`{"event":"attributes","data":...}`) and per
server RPC (`{"event":"rpc","id":...,"method":...,"params":...}`), answering each RPC with
`{"echo": params, "method": method}`, until EVENTS events came; then `{"event":"done"}`, exit 0.
Failures print `{"error": ...}` and exit non-zero. Bounded: 40 s.
"""

import json
import os
import sys
import threading
import time

DEADLINE_S = 40.0


def emit(obj):
    print(json.dumps(obj), flush=True)


def fail(message, code=1):
    emit({"error": message})
    os._exit(code)


try:
    import mmh3  # noqa: F401  (without it the SDK tries to pip-install it at import time)
    from tb_device_mqtt import TBDeviceMqttClient
except ImportError as e:
    fail(f"the SDK is not installed ({e}): pip install -r e2e/python/requirements.txt", code=4)


def main():
    host, port, token, events = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    timer = threading.Timer(DEADLINE_S, lambda: fail(f"timed out after {DEADLINE_S:.0f} s", 3))
    timer.daemon = True
    timer.start()

    client = TBDeviceMqttClient(host, port=port, username=token)
    seen = []
    lock = threading.Lock()
    all_seen = threading.Event()

    def count(obj):
        with lock:
            seen.append(obj)
            emit(obj)
            if len(seen) >= events:
                all_seen.set()

    def on_attributes(content, exception, *rest):
        if exception is not None:
            fail(f"attribute update error: {exception}")
        count({"event": "attributes", "data": content})

    def on_rpc(request_id, content):
        method = content.get("method")
        params = content.get("params")
        client.send_rpc_reply(request_id, {"echo": params, "method": method})
        count({"event": "rpc", "id": request_id, "method": method, "params": params})

    client.set_server_side_rpc_request_handler(on_rpc)
    client.subscribe_to_all_attributes(on_attributes)

    connack = {}

    def on_connect(paho_client, userdata, flags, result_code, *extra, **kwargs):
        connack["code"] = getattr(result_code, "value", result_code)

    client.connect(callback=on_connect, keepalive=30)
    deadline = time.monotonic() + 10
    while "code" not in connack:
        if time.monotonic() > deadline:
            fail("no CONNACK within 10 s")
        time.sleep(0.02)
    if connack["code"] != 0:
        fail(f"CONNECT refused with reason code {connack['code']}")

    info = client.send_attributes({"fw": "2.0.1"})
    info.get()
    answer = {}
    answered = threading.Event()

    def on_answer(content, exception, *rest):
        answer["value"] = {"error": str(exception)} if exception is not None else content
        answered.set()

    # Requests travel after the SDK's subscriptions on the same connection: once this is
    # answered, the platform knows what the device subscribed to.
    client.request_attributes(client_keys=["fw"], shared_keys=["target_temp"], callback=on_answer)
    if not answered.wait(10):
        fail("no answer to the attribute request within 10 s")
    emit({"event": "ready", "attributes": answer["value"]})

    if not all_seen.wait(DEADLINE_S):
        fail(f"only {len(seen)} of {events} events")
    # Give the last RPC answer time to leave.
    time.sleep(0.5)
    client.disconnect()
    client.stop()
    emit({"event": "done"})
    os._exit(0)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 - any failure is a failed run, with its cause
        fail(f"{type(e).__name__}: {e}")
