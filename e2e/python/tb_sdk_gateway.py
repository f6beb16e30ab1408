#!/usr/bin/env python3
"""A gateway and the devices behind it, driven by ThingsBoard's own Python gateway client
(`tb-mqtt-client`'s `TBGatewayMqttClient`, what ThingsBoard IoT Gateway is built on).

Run by the end-to-end test `gateway::` (e2e/tests/it/gateway.rs). Usage:

    tb_sdk_gateway.py HOST PORT TOKEN

It connects as the gateway (MQTT 5, as the SDK does), lets the SDK fetch and apply its session
limits, connects the devices `thermo-1` (type `thermostat`) and `thermo-2` (type `default`) behind
it, sends their telemetry (with `ts` and without) and `thermo-1`'s client attributes, asks for
them back, and prints `{"event":"ready",...}`. Then it prints one JSON line per shared-attribute
update (`{"event":"attributes","content":...}`) and per server RPC for a device behind it
(`{"event":"rpc","content":...}`), answering each RPC with `{"echo": params, "method": method}`,
until one of each came; then it asks for `thermo-1`'s shared attribute `target`
(`{"event":"shared","answer":...}`), disconnects `thermo-2`, then itself, and prints
`{"event":"done"}`. Every QoS 1 publish must be acknowledged with reason code 0. Failures print
`{"error": ...}` and exit non-zero. Bounded: 60 s.
"""

import copy
import json
import os
import sys
import threading
import time

# The time the test stamps its points with (recent: the server refuses points older than
# the retention); the start of yesterday, UTC, unless the test says.
TS0 = int(os.environ.get("STEAD_TEST_TS0", "0")) or (int(time.time()) // 86400 - 1) * 86400000

DEADLINE_S = 60.0
STEP_TIMEOUT_S = 15.0


def emit(obj):
    print(json.dumps(obj), flush=True)


def fail(message, code=1):
    emit({"error": message})
    # os._exit: the SDK's non-daemon paho thread must not keep a failed run alive.
    os._exit(code)


try:
    # mmh3 first: when it is missing, the SDK tries to pip-install it at import time.
    import mmh3  # noqa: F401
    from importlib import metadata

    from tb_gateway_mqtt import TBGatewayMqttClient
except ImportError as e:
    fail(f"the SDK is not installed ({e}): pip install -r e2e/python/requirements.txt", code=4)


def wait_for(what, predicate, timeout=STEP_TIMEOUT_S):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            fail(f"no {what} within {timeout:.0f} s")
        time.sleep(0.02)


def main():
    host, port, token = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    timer = threading.Timer(DEADLINE_S, lambda: fail(f"timed out after {DEADLINE_S:.0f} s", 3))
    timer.daemon = True
    timer.start()

    client = TBGatewayMqttClient(host, port=port, username=token)

    # The PUBACK reason code of every publish, by message id: the SDK only logs refused ones.
    acks = {}
    sdk_on_publish = client._client.on_publish

    def on_publish(paho_client, userdata, mid, reason_code, properties=None):
        acks[mid] = getattr(reason_code, "value", reason_code)
        sdk_on_publish(paho_client, userdata, mid, reason_code, properties)

    client._client.on_publish = on_publish

    # What getSessionLimits answered, before the SDK's own handler takes it apart.
    limits = {}
    sdk_on_limits = client.service_configuration_callback

    def on_limits(_, response, *args, **kwargs):
        limits["answer"] = copy.deepcopy(response)
        sdk_on_limits(_, response, *args, **kwargs)

    client.service_configuration_callback = on_limits

    events = []
    lock = threading.Lock()
    got = {"attributes": threading.Event(), "rpc": threading.Event()}

    def record(kind, content):
        with lock:
            events.append(kind)
            emit({"event": kind, "content": content})
        got[kind].set()

    def on_rpc(gateway, content):
        data = content.get("data", {})
        gateway.gw_send_rpc_reply(
            content["device"], data["id"], {"echo": data.get("params"), "method": data.get("method")}
        )
        record("rpc", content)

    client.gw_set_server_side_rpc_request_handler(on_rpc)
    client.gw_subscribe_to_all_attributes(lambda content: record("attributes", content))

    connack = {}

    def on_connect(paho_client, userdata, flags, result_code, *extra, **kwargs):
        connack["code"] = getattr(result_code, "value", result_code)

    client.connect(callback=on_connect, keepalive=30)
    wait_for("CONNACK", lambda: "code" in connack)
    if connack["code"] != 0:
        fail(f"CONNECT refused with reason code {connack['code']}")
    # On connect the SDK asks for getSessionLimits itself and applies the answer.
    wait_for("session limits applied by the SDK", lambda: client.rate_limits_received)
    # Its subscriptions to v1/gateway/attributes, .../attributes/response and v1/gateway/rpc.
    wait_for("gateway subscriptions", lambda: not client.get_subscriptions_in_progress())

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

    out = {"event": "ready", "sdk_version": metadata.version("tb-mqtt-client"), "publishes": {}}
    p = out["publishes"]
    p["connect_1"] = acked(client.gw_connect_device("thermo-1", "thermostat"), "connect thermo-1")
    p["connect_2"] = acked(client.gw_connect_device("thermo-2"), "connect thermo-2")
    p["telemetry_1"] = acked(
        client.gw_send_telemetry(
            "thermo-1",
            [
                {"ts": TS0, "values": {"temperature": 21.5, "humidity": 40}},
                {"ts": TS0 + 1000, "values": {"temperature": 21.75}},
            ],
        ),
        "telemetry of thermo-1",
    )
    before = int(time.time() * 1000)
    p["telemetry_2"] = acked(
        client.gw_send_telemetry("thermo-2", {"temperature": 19.5, "on": True}),
        "telemetry of thermo-2",
    )
    out["server_time_window"] = [before, int(time.time() * 1000)]
    p["attributes_1"] = acked(
        client.gw_send_attributes("thermo-1", {"fw": "2.0", "serial": "T1"}),
        "attributes of thermo-1",
    )

    def ask(what, request):
        answer = {}
        done = threading.Event()

        def on_answer(content, exception, *rest):
            answer["value"] = {"error": str(exception)} if exception is not None else content
            done.set()

        request(on_answer)
        if not done.wait(STEP_TIMEOUT_S):
            fail(f"no answer to {what} within {STEP_TIMEOUT_S:.0f} s")
        return answer["value"]

    out["client_attributes"] = ask(
        "the client attribute request",
        lambda cb: client.gw_request_client_attributes("thermo-1", ["fw", "serial"], cb),
    )
    out["one_attribute"] = ask(
        "the one-key attribute request",
        lambda cb: client.gw_request_client_attributes("thermo-1", ["fw"], cb),
    )
    out["session_limits"] = limits.get("answer")
    out["sdk_applied_gateway_limits"] = (
        client._devices_connected_through_gateway_messages_rate_limit.has_limit()
    )
    emit(out)

    for kind, event in got.items():
        if not event.wait(DEADLINE_S):
            fail(f"no {kind} event")
    emit({
        "event": "shared",
        "answer": ask(
            "the shared attribute request",
            lambda cb: client.gw_request_shared_attributes("thermo-1", ["target"], cb),
        ),
    })
    acked(client.gw_disconnect_device("thermo-2"), "disconnect thermo-2")
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
