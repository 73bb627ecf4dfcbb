#!/usr/bin/env python3
"""Run tests/homeserver/mxhs.py with TCP_NODELAY on its connections.

mxhs answers with two writes (headers, then body). On a kept-alive
connection Nagle holds the body until the client ACKs the headers, and the
client delays that ACK by up to 40 ms, so every request on a reused
connection (the bot's libcurl handles, the benchmark's own clients) would
cost ~40 ms of the test server's making. The benchmarks measure the bot, not
that artefact, so they run the unchanged server with Nagle switched off.
Arguments are mxhs.py's own.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "homeserver"))
import mxhs  # noqa: E402

mxhs.Handler.disable_nagle_algorithm = True
mxhs.main()
