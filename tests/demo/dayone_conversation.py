#!/usr/bin/env python3
"""A day-one conversation to look at in a real client (issue 13 item 19):
mxhs on a fixed port (PORT, default 8448), alice (password alicepass), bob
and erin with display names, the bot (build/tlbot or TLBOT_BIN) and a
morning of commands; then it runs until interrupted. To see it as people do:

    apt-get install nheko xvfb xdotool imagemagick dbus-x11
    python3 tests/demo/dayone_conversation.py &      # prints READY <url>
    Xvfb :77 -screen 0 1280x900x24 &
    mkdir -p $HOME/.config/nheko && printf '[General]\nrun_without_secure_secrets_service=true\n' \
        > $HOME/.config/nheko/nheko.conf
    DISPLAY=:77 dbus-launch nheko &
    # log in as @alice:localhost / alicepass, homeserver http://127.0.0.1:8448
    DISPLAY=:77 import -window root shot.png

Not part of CI (nheko is not in .ci/deps)."""
import calendar
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import mx  # noqa: E402



def utc(y, mo, d, h, mi):
    return calendar.timegm((y, mo, d, h, mi, 0))


hs = mx.Homeserver(port=int(os.environ.get("PORT", "8448")))
alice = hs.register("alice", "alicepass")
alice.set_displayname("Alice Morgan")
bob = hs.register("bob")
bob.set_displayname("Bob Patel")
erin = hs.register("erin")
erin.set_displayname("Erin Hughes")
bot = mx.Bot(hs, tempfile.mkdtemp(prefix="tlbot-look-"), config_extra={"rate_limit_per_min": 0})
bot.set_clock(utc(2026, 11, 18, 8, 0))
bot.start()
room = alice.create_room(name="Leeds family hubs", invite=["@bob:localhost", "@erin:localhost"])
bob.join(room)
erin.join(room)
alice.invite(room, bot.user_id)
alice.wait_membership(room, bot.user_id, "join", timeout=15)
time.sleep(1)



def ask(text, user=alice):
    ev = user.send_text(room, text)
    user.wait_reply(room, ev, timeout=20)


ask("!team add @bob:localhost --role policy")
ask("!team add erin --role data")
ask('!challenge new "Family hub footfall" --lead @erin:localhost --due +4w')
ask('!challenge new "Waiting lists" --lead @alice:localhost')
ask("!challenge assign C-1 @bob:localhost")
ask('!exp new C-1 "Text reminders" "We believe a text the day before will result in fewer missed visits. We will know when missed visits fall below 10%." --metric "missed visits" --baseline 18 --target 10 --unit %')
ask("!exp start E-1 --until +2w")
ask("!standup schedule 09:30 Europe/London mon-fri")
bot.set_clock(utc(2026, 11, 18, 9, 30))
time.sleep(2)
ask("!standup y: counted visitors at C-1 t: call the council b: waiting on the data sharing agreement", user=bob)
ask("!standup y: drafted the survey t: pilot E-1 b: none now – signed this morning ✅", user=erin)
ask("!standup y: planning t: reviews b: none")
ask("!standup b: contract for C-1 unsigned", user=erin)
bot.set_clock(utc(2026, 11, 18, 10, 15))
time.sleep(3)
ask("!exp result E-1 --value 9 \"fell to 9%\"")
ask("!challenge list")
ask("!exp show E-1")
ask("!help")
print("READY", hs.url, room, flush=True)
while True:
    time.sleep(60)
