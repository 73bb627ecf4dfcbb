#!/usr/bin/python3
"""Run bot.py with matrix-nio 0.20 speaking the v3 client paths.

nio 0.20 builds every client path under the legacy /_matrix/client/r0
prefix; tests/homeserver/mxhs.py serves the v3 paths only (as the spec
defines them since v1.1), as current Synapse and Conduit prefer. The bench
runs this wrapper so the peer talks to the same endpoints as tlbot; the bot
itself is unchanged. Run with Debian's /usr/bin/python3.
"""
import os
import runpy
import sys

import nio

_d = list(nio.Api._build_path.__defaults__)
_d[-1] = "/_matrix/client/v3"
nio.Api._build_path.__defaults__ = tuple(_d)

bot = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bot.py")
sys.argv = [bot] + sys.argv[1:]
runpy.run_path(bot, run_name="__main__")
