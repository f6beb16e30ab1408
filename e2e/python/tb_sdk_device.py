#!/usr/bin/env python3
"""One device session of ThingsBoard's own Python device SDK (`tb-mqtt-client`) against Stead.

Run by the end-to-end test `sdk::` (e2e/tests/it/sdk.rs), which checks what this prints and what
Stead stored. Usage:

    tb_sdk_device.py HOST PORT TOKEN
    (or STEAD_MQTT_HOST, STEAD_MQTT_PORT, STEAD_DEVICE_TOKEN in the environment)

With the SDK's `TBDeviceMqttClient` it connects (MQTT 5, as the SDK does), lets the SDK fetch its
session limits the way it always does on connect, sends telemetry in the three forms the SDK takes
(a dict, a dict with ts/values, a list), sends client attributes, requests client and shared
attributes, calls the client-side RPC `getSessionLimits`, and disconnects. Every QoS 1 publish must
be acknowledged with reason code 0. It prints one JSON line with what it received and exits 0;
on any failure it prints `{"error": ...}` and exits non-zero. Bounded: 30 s at most.
"""

import json
import logging
import os
import sys
import threading
import time

# The time the test stamps its points with (recent: the server refuses points older than
# the retention); the start of yesterday, UTC, unless the test says.
TS0 = int(os.environ.get("STEAD_TEST_TS0", "0")) or (int(time.time()) // 86400 - 1) * 86400000

DEADLINE_S = 30.0
STEP_TIMEOUT_S = 10.0


def fail(message, code=1):
    print(json.dumps({"error": message}), flush=True)
    # os._exit: the SDK's non-daemon paho thread must not keep a failed run alive.
    os._exit(code)


def watchdog():
    fail(f"timed out after {DEADLINE_S:.0f} s", code=3)


try:
    # mmh3 first: when it is missing, the SDK tries to pip-install it at import time.
    import mmh3  # noqa: F401
    from importlib import metadata

    from tb_device_mqtt import TBDeviceMqttClient
except ImportError as e:
    fail(f"the SDK is not installed ({e}): pip install -r e2e/python/requirements.txt", code=4)


def wait_for(what, predicate, timeout=STEP_TIMEOUT_S):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            fail(f"no {what} within {timeout:.0f} s")
        time.sleep(0.02)


def main():
    args = sys.argv[1:]
    host = args[0] if len(args) > 0 else os.environ.get("STEAD_MQTT_HOST", "127.0.0.1")
    port = int(args[1] if len(args) > 1 else os.environ.get("STEAD_MQTT_PORT", "1883"))
    token = args[2] if len(args) > 2 else os.environ.get("STEAD_DEVICE_TOKEN", "")
    if not token:
        fail("usage: tb_sdk_device.py HOST PORT TOKEN")

    timer = threading.Timer(DEADLINE_S, watchdog)
    timer.daemon = True
    timer.start()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    client = TBDeviceMqttClient(host, port=port, username=token)

    # The PUBACK reason code of every publish, by message id. The SDK only logs refused ones; the
    # test needs to know that each was stored.
    acks = {}
    sdk_on_publish = client._client.on_publish

    def on_publish(paho_client, userdata, mid, reason_code, properties=None):
        acks[mid] = getattr(reason_code, "value", reason_code)
        sdk_on_publish(paho_client, userdata, mid, reason_code, properties)

    client._client.on_publish = on_publish

    connack = {}

    def on_connect(paho_client, userdata, flags, result_code, *extra, **kwargs):
        connack["code"] = getattr(result_code, "value", result_code)

    client.connect(callback=on_connect, keepalive=30)
    wait_for("CONNACK", lambda: "code" in connack)
    if connack["code"] != 0:
        fail(f"CONNECT refused with reason code {connack['code']}")

    # On connect the SDK asks for getSessionLimits itself and applies the answer.
    wait_for("session limits applied by the SDK", lambda: client.rate_limits_received)

    def acked(info, what):
        mids = info.mid()
        mids = mids if isinstance(mids, list) else [mids]
        if not mids or info.rc() != 0:
            fail(f"{what}: the SDK did not send it (rc {info.rc()})")
        wait_for(f"PUBACK for {what}", lambda: all(m in acks for m in mids))
        codes = [acks[m] for m in mids]
        if any(c != 0 for c in codes):
            fail(f"{what}: PUBACK reason codes {codes}")
        return len(mids)

    out = {"sdk_version": metadata.version("tb-mqtt-client")}
    out["sdk_max_payload_size"] = client.max_payload_size

    # 1. A plain dict: stored at server time.
    before = int(time.time() * 1000)
    out["publishes"] = {}
    out["publishes"]["dict"] = acked(
        client.send_telemetry({"temperature": 21.5, "on": True, "mode": "eco", "count": 7}),
        "telemetry as a dict",
    )
    out["server_time_window"] = [before, int(time.time() * 1000)]
    # 2. A dict with ts and values.
    out["publishes"]["ts_values"] = acked(
        client.send_telemetry({"ts": TS0, "values": {"temperature": 19.25, "humidity": 40}}),
        "telemetry with ts/values",
    )
    # 3. A list, of ts/values and of a plain dict.
    out["publishes"]["list"] = acked(
        client.send_telemetry(
            [
                {"ts": TS0 + 1000, "values": {"temperature": 19.5}},
                {"ts": TS0 + 2000, "values": {"temperature": 20.0, "config": {"a": 1}}},
            ]
        ),
        "telemetry as a list",
    )
    out["publishes"]["attributes"] = acked(
        client.send_attributes({"fw": "1.2.0", "serial": "A17", "calibrated": True, "channels": 4}),
        "client attributes",
    )

    answers = {}
    done = {k: threading.Event() for k in ("client", "shared", "rpc")}

    def attribute_callback(name):
        def callback(content, exception, *rest):
            answers[name] = {"error": str(exception)} if exception is not None else content
            done[name].set()

        return callback

    client.request_attributes(
        client_keys=["fw", "serial", "calibrated", "channels", "never_sent"],
        callback=attribute_callback("client"),
    )
    client.request_attributes(shared_keys=["fw_version"], callback=attribute_callback("shared"))

    def rpc_callback(request_id, content, exception=None):
        answers["rpc"] = {"error": str(exception)} if exception is not None else content
        done["rpc"].set()

    client.send_rpc_call("getSessionLimits", {}, rpc_callback)

    for name, event in done.items():
        if not event.wait(STEP_TIMEOUT_S):
            fail(f"no answer to the {name} request within {STEP_TIMEOUT_S:.0f} s")
    out["client_attributes"] = answers["client"]
    out["shared_attributes"] = answers["shared"]
    out["session_limits"] = answers["rpc"]

    client.disconnect()
    client.stop()
    print(json.dumps(out), flush=True)
    os._exit(0)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 - any failure is a failed run, with its cause
        fail(f"{type(e).__name__}: {e}")
