#!/usr/bin/env python3
"""Device provisioning with ThingsBoard's own Python SDK (`tb-mqtt-client`) against Stead.

Run by the end-to-end tests `credentials::` (e2e/tests/it/credentials.rs). Usage:

    tb_sdk_provision.py HOST PORT REQUEST

REQUEST is a JSON object: {"key", "secret", "device_name"} and, optionally, "access_token" or
"client_id"/"username"/"password", passed as they are to the SDK's
`TBDeviceMqttClient.provision(host, key, secret, port=..., device_name=..., ...)` (which connects
as `provision`, subscribes to /provision/response and publishes to /provision/request over MQTT
3.1.1). With the credentials it answers, the SDK's device client then connects (MQTT 5) and sends
one telemetry message `{"provisioned": 1}`. Prints one JSON line:
{"credentials": <the SDK's answer or null>, "connack": <reason code>} and exits 0; on failure
{"error": ...} and a non-zero exit. Bounded: 40 s at most.
"""

import json
import logging
import sys
import threading
import time

DEADLINE_S = 40.0


def fail(message, code=1):
    print(json.dumps({"error": message}), flush=True)
    import os

    # os._exit: the SDK's non-daemon paho threads must not keep a failed run alive.
    os._exit(code)


try:
    # mmh3 first: when it is missing, the SDK tries to pip-install it at import time.
    import mmh3  # noqa: F401

    from tb_device_mqtt import TBDeviceMqttClient
except ImportError as e:
    fail(f"the SDK is not installed ({e}): pip install -r e2e/python/requirements.txt", code=4)


def main():
    if len(sys.argv) != 4:
        fail("usage: tb_sdk_provision.py HOST PORT REQUEST_JSON")
    host, port, request = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
    timer = threading.Timer(DEADLINE_S, lambda: fail(f"timed out after {DEADLINE_S:.0f} s", code=3))
    timer.daemon = True
    timer.start()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    credentials = TBDeviceMqttClient.provision(
        host,
        request["key"],
        request["secret"],
        port=port,
        device_name=request.get("device_name"),
        access_token=request.get("access_token"),
        client_id=request.get("client_id"),
        username=request.get("username"),
        password=request.get("password"),
    )
    out = {"credentials": credentials, "connack": None}
    if credentials is None:
        print(json.dumps(out), flush=True)
        return

    value = credentials["credentialsValue"]
    if credentials["credentialsType"] == "ACCESS_TOKEN":
        client = TBDeviceMqttClient(host, port=port, username=value)
    else:
        client = TBDeviceMqttClient(
            host,
            port=port,
            username=value["userName"],
            password=value["password"],
            client_id=value.get("clientId") or "",
        )
    connack = {}

    def on_connect(paho_client, userdata, flags, result_code, *extra, **kwargs):
        connack["code"] = getattr(result_code, "value", result_code)

    client.connect(callback=on_connect, keepalive=30)
    deadline = time.monotonic() + 10
    while "code" not in connack and time.monotonic() < deadline:
        time.sleep(0.02)
    out["connack"] = connack.get("code")
    if out["connack"] == 0:
        # On connect the SDK asks for getSessionLimits itself before it sends anything.
        while not client.rate_limits_received and time.monotonic() < deadline + 10:
            time.sleep(0.02)
        rc = client.send_telemetry({"provisioned": 1}).get()
        if rc != 0:
            fail(f"the telemetry was not sent (rc {rc})")
    client.disconnect()
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    try:
        main()
    except SystemExit:
        raise
    except BaseException as e:  # noqa: BLE001
        fail(f"{type(e).__name__}: {e}")
    import os

    os._exit(0)
