#!/usr/bin/env python3
"""A firmware update with ThingsBoard's own Python device SDK (`tb-mqtt-client`), unchanged.

Run by the end-to-end test `ota::` (e2e/tests/it/ota.rs). Usage:

    tb_sdk_firmware.py HOST PORT TOKEN CHUNK_SIZE

It connects, calls the SDK's `get_firmware_update()` (which subscribes to `v2/fw/response/+`,
reports its current firmware, asks for the `fw_*` shared attributes and downloads the target in
chunks of CHUNK_SIZE bytes over `v2/fw/request/{req}/chunk/{n}`), and on a verified image reports
UPDATED the way the SDK's own default does (without writing a file). It prints one JSON line: the
last state the SDK reported, how many downloads ended FAILED, and the SHA-256 and size of the last
image it received. It ends when the update is UPDATED, or when the platform withdrew the target
after failed downloads (no `fw_version` any more), or after 60 s.
"""

import hashlib
import json
import logging
import os
import sys
import threading
import time

DEADLINE_S = 60.0


def fail(message, code=1):
    print(json.dumps({"error": message}), flush=True)
    os._exit(code)


try:
    import mmh3  # noqa: F401  (else the SDK pip-installs it at import time)
    from tb_device_mqtt import TBDeviceMqttClient
except ImportError as e:
    fail(f"the SDK is not installed ({e}): pip install -r e2e/python/requirements.txt", code=4)


def main():
    host, port, token, chunk = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    threading.Timer(DEADLINE_S, lambda: fail(f"timed out after {DEADLINE_S:.0f} s", 3)).start()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    client = TBDeviceMqttClient(host, port=port, username=token, chunk_size=chunk)
    seen = {"states": [], "failures": 0, "sha256": None, "size": None, "withdrawn": False}

    sdk_update = client.update_firmware_info

    def update_firmware_info(*args, **kwargs):
        state = kwargs.get("state")
        if state is not None:
            seen["states"].append(state.value)
            if state.value == "FAILED":
                seen["failures"] += 1
            if state.value == "DOWNLOADED":
                seen["sha256"] = hashlib.sha256(client.firmware_data).hexdigest()
                seen["size"] = len(client.firmware_data)
        return sdk_update(*args, **kwargs)

    client.update_firmware_info = update_firmware_info

    def received(c, data, version):
        # The SDK's default callback, without writing the image to a file.
        from tb_device_mqtt import TBFirmwareState

        c.update_firmware_info(state=TBFirmwareState.UPDATING)
        c.update_firmware_info(
            title=c.firmware_info.get("fw_title"),
            version=c.firmware_info.get("fw_version"),
            state=TBFirmwareState.UPDATED,
        )

    client.set_on_firmware_received_callback(received)

    connected = threading.Event()
    client.connect(callback=lambda *a, **k: connected.set(), keepalive=30)
    if not connected.wait(10):
        fail("no CONNACK within 10 s")
    client.get_firmware_update()

    while True:
        time.sleep(0.1)
        if seen["states"] and seen["states"][-1] == "UPDATED":
            break
        # After a failure the SDK asks for the attributes again; once the platform has withdrawn
        # the target, the answer has no fw_version and the SDK stops.
        info = getattr(client, "firmware_info", None)
        if seen["failures"] and isinstance(info, dict) and info.get("fw_version") is None:
            seen["withdrawn"] = True
            time.sleep(1.5)
            break
    client.disconnect()
    print(
        json.dumps(
            {
                "state": seen["states"][-1] if seen["states"] else None,
                "states": seen["states"],
                "failures": seen["failures"],
                "sha256": seen["sha256"],
                "size": seen["size"],
                "withdrawn": seen["withdrawn"],
                "current": client.current_firmware_info,
            }
        ),
        flush=True,
    )
    os._exit(0)


if __name__ == "__main__":
    main()
