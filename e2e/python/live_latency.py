"""Publish → live-view latency: a probe device publishes QoS 1 telemetry carrying its send time
while this script watches the device's live stream (server-sent events) through the REST API,
and reports p50/p99/max of (event received − message sent), in milliseconds.

Run it while a load runs (e.g. `stead-e2e loadgen ... --rate 10`) to measure under load:
    python3 e2e/python/live_latency.py --api http://127.0.0.1:8080 --mqtt-port 1884 \
        --access-token <person's access token> --device-id <probe id> --device-token <probe token> \
        --count 300 --interval 0.1
Bounded: it stops after --count messages or --timeout seconds, and only talks to the given host.
"""

import argparse
import json
import statistics
import threading
import time

import paho.mqtt.client as mqtt
import requests


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--api", required=True)
    ap.add_argument("--mqtt-host", default="127.0.0.1")
    ap.add_argument("--mqtt-port", type=int, required=True)
    ap.add_argument("--access-token", required=True)
    ap.add_argument("--device-id", required=True)
    ap.add_argument("--device-token", required=True)
    ap.add_argument("--count", type=int, default=300)
    ap.add_argument("--interval", type=float, default=0.1)
    ap.add_argument("--timeout", type=float, default=120)
    args = ap.parse_args()

    latencies = []
    done = threading.Event()

    def watch():
        url = f"{args.api}/api/v1/devices/{args.device_id}/live"
        with requests.get(url, headers={"Authorization": f"Bearer {args.access_token}"}, stream=True, timeout=args.timeout) as r:
            r.raise_for_status()
            for line in r.iter_lines(decode_unicode=True):
                if done.is_set():
                    return
                if not line or not line.startswith("data:"):
                    continue
                event = json.loads(line[5:])
                sent = event.get("values", {}).get("probe_sent_ms")
                if event.get("type") == "telemetry" and sent is not None:
                    latencies.append(time.time() * 1000 - sent)
                    if len(latencies) >= args.count:
                        done.set()
                        return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    time.sleep(2.0)  # the watch registration reaches every node

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"probe-{time.time_ns()}")
    client.username_pw_set(args.device_token, "")
    client.connect(args.mqtt_host, args.mqtt_port, keepalive=30)
    client.loop_start()
    deadline = time.time() + args.timeout
    for _ in range(args.count):
        if done.is_set() or time.time() > deadline:
            break
        payload = json.dumps({"probe_sent_ms": time.time() * 1000})
        client.publish("v1/devices/me/telemetry", payload, qos=1)
        time.sleep(args.interval)
    done.wait(timeout=max(1.0, deadline - time.time()))
    client.loop_stop()
    client.disconnect()

    if not latencies:
        print(json.dumps({"error": "no live events received"}))
        return 1
    ordered = sorted(latencies)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]
    print(json.dumps({
        "events": len(ordered),
        "p50_ms": round(statistics.median(ordered), 1),
        "p99_ms": round(pick(0.99), 1),
        "max_ms": round(ordered[-1], 1),
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
