#!/usr/bin/env python3
"""Run an integration suite with every bot going through tlbot-wsgateway:

    python3 tests/tools/via_gateway.py tests/integration/test_spine.py [unittest args]

Each mx.Homeserver gets one gateway (started on first use, on a fixed port so
hs.restart() keeps working); every mx.Bot whose suite did not choose a
transport itself is configured with transport websocket and the gateway's
URL. mx.py is not changed: its Bot class is wrapped here."""

import atexit
import os
import runpy
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import mx  # noqa: E402

_gateways = {}


def _gateway_for(hs):
    gw = _gateways.get(id(hs))
    if gw and gw[0].poll() is None:
        return gw[1]
    port = mx.free_port()
    binary = os.environ.get("TLBOT_WSGATEWAY_BIN") or \
        os.path.join(os.path.dirname(mx.Bot.binary()), "tlbot-wsgateway")
    with open(os.path.join(mx.tmpdir("gw-"), "gateway.log"), "ab") as log:
        proc = subprocess.Popen([binary, "--upstream", hs.url, "--listen",
                                 f"127.0.0.1:{port}"], stdout=subprocess.PIPE, stderr=log,
                                stdin=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    if not line.startswith("LISTENING"):
        raise RuntimeError("tlbot-wsgateway did not start")
    url = f"ws://127.0.0.1:{port}"
    _gateways[id(hs)] = (proc, url)
    return url


@atexit.register
def _stop_gateways():
    for proc, _ in _gateways.values():
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)
        proc.stdout.close()


_orig_init = mx.Bot.__init__


def _init(self, hs, workdir, *args, **kwargs):
    _orig_init(self, hs, workdir, *args, **kwargs)
    extra = kwargs.get("config_extra") or (args[2] if len(args) > 2 else None) or {}
    if "transport" not in extra:
        self.config["transport"] = "websocket"
        self.config["websocket_url"] = _gateway_for(hs)
        self.write_config()


mx.Bot.__init__ = _init

if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    script = sys.argv[1]
    sys.argv = [script] + sys.argv[2:]
    sys.modules["mx"] = mx
    runpy.run_path(script, run_name="__main__")
