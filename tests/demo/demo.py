#!/usr/bin/env python3
"""The demo the README's run command shows when no homeserver is configured:
the local test homeserver, the real tlbot binary, and a short scripted
conversation in a team room, printed as a transcript. With a terminal it
then keeps running so you can watch (or talk to it with any Matrix client
pointed at the printed URL) until Ctrl-C."""

import argparse
import os
import sys
import textwrap
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import mx  # noqa: E402

SCRIPT = [
    ("alice", "!ping"),
    ("alice", "!help"),
    ("alice", '!team set --name "Sheffield TA" --region Sheffield'),
    ("alice", "!team add @bob:localhost --role data --until +26w"),
    ("alice", '!challenge new "Cut the cost of temporary accommodation" --region Sheffield --due +12w'),
    ("alice", "!challenge assign C-1 @bob:localhost --lead @alice:localhost"),
    ("bob", '!exp new C-1 "Call families before eviction notices" --believe "a call from a caseworker within 48h" '
            '--result-in "fewer placements in B&B" --know-when "placements drop 10% in 8 weeks" '
            '--metric placements --baseline 120 --target 108 --unit "per month" --until +8w'),
    ("bob", "!exp start E-1"),
    ("bob", '!exp note E-1 "Caseworkers reached 31 of 40 families in the first week"'),
    ("alice", "!standup schedule 09:30 Europe/London mon-fri"),
    ("bob", "!standup y: called 12 families t: write up week 1 b: waiting for the placements data from C-1's sponsor"),
    ("alice", '!remind me tomorrow 09:00 "Ask finance for the B&B invoices"'),
    ("alice", "!challenge show C-1"),
    ("bob", "!chalenge list"),
]


def width():
    try:
        return min(os.get_terminal_size().columns, 110)
    except OSError:
        return 100


def show(name, body, notice=False):
    w = width()
    label = f"{name:>6} {'»' if notice else '›'} "
    lines = []
    for para in (body or "").splitlines() or [""]:
        lines.extend(textwrap.wrap(para, w - len(label)) or [""])
    print(label + lines[0])
    for line in lines[1:]:
        print(" " * len(label) + line)
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--once", action="store_true", help="exit after the scripted conversation")
    args = ap.parse_args()
    interactive = sys.stdin.isatty() and not args.once

    print("tlbot demo: no homeserver configured, so starting the bundled local test "
          "homeserver and the bot against it.\n")
    with mx.Homeserver() as hs:
        users = {"alice": hs.register("alice", "alicepw"), "bob": hs.register("bob", "bobpw")}
        users["alice"].set_displayname("Alice (team lead)")
        users["bob"].set_displayname("Bob (data)")
        workdir = mx.tmpdir("tlbot-demo-")
        bot = mx.Bot(hs, workdir, config_extra={"log_level": "info"})
        bot.start()
        try:
            alice, bob = users["alice"], users["bob"]
            room = alice.create_room(name="Sheffield TA", invite=[bot.user_id, bob.user_id])
            bob.join(room)
            alice.wait_membership(room, bot.user_id, "join", timeout=20)
            print(f"Room \"Sheffield TA\" ({room}) — alice invited tlbot and bob; tlbot joined.\n")
            for who, text in SCRIPT:
                user = users[who]
                ev = user.send_text(room, text)
                show(who, text)
                try:
                    r = user.wait_reply(room, ev, timeout=20)
                    show("tlbot", r["content"]["body"], notice=True)
                except mx.WaitTimeout:
                    show("tlbot", "(no answer within 20 s — see the bot log)", notice=True)
                print()
            try:
                dm = bob.wait_for_invite(timeout=10, inviter=bot.user_id)
                bob.join(dm)
                print("bob's direct messages from tlbot (a DM room tlbot opened):")
                for ev in bob.room_events(dm):
                    if ev.get("sender") == bot.user_id and ev.get("type") == "m.room.message":
                        show("tlbot", ev["content"].get("body"), notice=True)
                print()
            except mx.WaitTimeout:
                pass
            print(f"bot log: {bot.log_path} (removed on exit; keep it with TLBOT_KEEP_TMP=1)")
            if interactive:
                print(f"\nStill running. Homeserver: {hs.url} — log in as alice / alicepw or "
                      f"bob / bobpw with any Matrix client and talk to tlbot in \"Sheffield TA\".\n"
                      f"New messages in the room appear below. Ctrl-C stops everything.\n")
                seen = {e["event_id"] for e in alice.events(room)}
                while bot.alive():
                    for e in alice.events(room):
                        if e["event_id"] in seen or e.get("type") != "m.room.message":
                            continue
                        seen.add(e["event_id"])
                        who = e["sender"].split(":")[0][1:]
                        show(who, e["content"].get("body"), e["content"].get("msgtype") == "m.notice")
                    time.sleep(0.5)
        except KeyboardInterrupt:
            print("\nstopping")
        finally:
            code = bot.stop()
            print(f"tlbot stopped (exit {code}).")


if __name__ == "__main__":
    main()
