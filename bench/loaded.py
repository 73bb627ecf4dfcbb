"""Benchmarks on a loaded homeserver, with the reference peers side by side.

mxhs runs with its load model (tests/homeserver/mxhs.py, class Load): every
send costs SEND_MS of service time, every /sync answer SYNC_MS, and at most
WORKERS requests are in service at once; the rest queue (FIFO). Capacity is
then WORKERS / SEND_MS sends per second (4 / 40 ms = 100/s): a command and
its reply are two sends, so 20 commands/s is below capacity and 100/s is
above it, and queues build up as on a busy production homeserver.

Each bot (tlbot, and the peers in bench/peers/ when Node 20 / matrix-nio are
installed) gets a fresh homeserver with the same load and the same
senders; the table prints each figure per bot and the ratio tlbot / best
peer. A missing peer is a note, never a failure.

Also here: the DM burst (1,600 DM prompts due at the same minute across 200
rooms, 40 ms a send, 8 workers) and the first sync of a big account are in
bench.py's rss section.
"""

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import threading
import time

import bench as B

PEERS = os.path.join(B.HERE, "peers")
SEND_MS, SYNC_MS, WORKERS = 40, 10, 4
NODE = "/usr/bin/node"
NIO_PYTHON = "/usr/bin/python3"
SEND_TEMPLATE = "PUT /_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}"


def set_load(hs, send_ms, sync_ms, workers):
    return hs.api("POST", "/_test/load", {"send_ms": send_ms, "sync_ms": sync_ms,
                                          "workers": workers})


# --------------------------------------------------------------------------
# The peers
# --------------------------------------------------------------------------

def peer_available(name):
    """-> None if it can run, else why not (a note for the table)."""
    if name == "botsdk":
        if not os.path.exists(NODE):
            return "node not installed"
        try:
            v = subprocess.run([NODE, "--version"], capture_output=True, text=True,
                               timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError) as e:
            return f"node does not run: {e}"
        if not v.startswith("v20") and not v.startswith("v2"):
            return f"node {v}, needs 20"
        if not os.path.isdir(os.path.join(PEERS, "botsdk", "node_modules", "matrix-bot-sdk")):
            return "bench/peers/botsdk: run (cd bench/peers/botsdk && npm ci) first"
        return None
    if name == "nio":
        if not os.path.exists(NIO_PYTHON):
            return "/usr/bin/python3 missing"
        r = subprocess.run([NIO_PYTHON, "-c", "import nio"], capture_output=True, timeout=30)
        return None if r.returncode == 0 else "python3-matrix-nio not installed"
    return "unknown peer"


class PeerBot:
    """A reference bot process (bench/peers/README.md has the contract)."""

    def __init__(self, name, hs, workdir, localpart="peerbot", password="peerpass"):
        self.name, self.hs = name, hs
        self.user_id = f"@{localpart}:{hs.server_name}"
        hs.ensure_user(localpart, password)
        self.workdir = workdir
        shutil.rmtree(workdir, ignore_errors=True)
        os.makedirs(workdir)
        self.env = dict(os.environ, MX_HS=hs.url, MX_USER=self.user_id, MX_PASSWORD=password,
                        MX_STATE_DIR=workdir, MX_DB=os.path.join(workdir, "bot.sqlite"))
        if name == "botsdk":
            self.cmd = [NODE, os.path.join(PEERS, "botsdk", "bot.js")]
        else:
            self.cmd = [NIO_PYTHON, os.path.join(PEERS, "nio", "run_v3.py")]
        self.proc = None
        self.ready_ms = None

    def start(self, timeout=60):
        self.t_launch = time.time()
        self.log = open(os.path.join(self.workdir, "bot.log"), "w")
        self.proc = subprocess.Popen(self.cmd, env=self.env, stdout=subprocess.PIPE,
                                     stderr=self.log, stdin=subprocess.DEVNULL, text=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"{self.name} exited before MXBENCH_READY (see "
                                   f"{self.workdir}/bot.log)")
            if line.startswith("MXBENCH_READY"):
                self.ready_ms = int(line.split()[1])
                threading.Thread(target=self.proc.stdout.read, daemon=True).start()
                return
        raise RuntimeError(f"{self.name}: no MXBENCH_READY in {timeout}s")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.log.close()


# --------------------------------------------------------------------------
# The runs
# --------------------------------------------------------------------------

class LoadedBench(B.LatencyBench):
    """LatencyBench's loops (senders, observer, floor/reply/added) against a
    loaded homeserver, for one bot."""

    def __init__(self, args, out, botname, nrooms):
        super().__init__(args, out)
        self.botname, self.nrooms = botname, nrooms

    def setup(self):
        a = self.args
        self.hs = B.mx.Homeserver(persist=False)
        url = self.hs.url
        self.senders = [self.hs.register(f"sender{i}") for i in range(self.nsenders)]
        self.obs_user = self.hs.register("observer")
        t0 = time.time()
        if self.botname == "tlbot":
            self.bot = B.mx.Bot(self.hs, os.path.join(a.work, f"bot-loaded-{self.nrooms}"),
                                config_extra=B.bot_config())
            self.bot.start()
            self.bot.wait_log(r"transport: (\w+)|starting /sync|sync: starting", timeout=15)
            self.pid = self.bot.proc.pid
        else:
            self.bot = PeerBot(self.botname, self.hs,
                               os.path.join(a.work, f"peer-{self.botname}-{self.nrooms}"))
            self.bot.start()
            self.pid = self.bot.proc.pid
        self.launch_s = time.time() - t0
        self.rooms = []
        for i in range(self.nrooms):
            r = self.senders[0].create_room(
                name=f"loaded {i}", invite=[s.user_id for s in self.senders[1:]] +
                [self.obs_user.user_id, self.bot.user_id])
            for s in self.senders[1:] + [self.obs_user]:
                s.join(r)
            self.rooms.append(r)
        B.wait_joined(self.hs, B.Conn(url, self.senders[0].token), self.bot.user_id, self.rooms)
        self.obs = B.Observer(url, self.obs_user)
        self.obs.prime()
        self.obs.start()
        self.sconns = [B.Conn(url, s.token) for s in self.senders]
        self.txn = 0
        self.txn_lock = threading.Lock()
        self.write_cmd = None
        # first reply after launch (unloaded): launch to the first answer
        t = time.time()
        ev, _ = self.put(0, self.rooms[0], "!ping")
        self.obs.wait_reply(ev, 30)
        self.first_reply_s = self.launch_s + (time.time() - t)

    def collect(self, sent, drain_s=None):
        return super().collect(sent, drain_s=drain_s or self.args.loaded_drain_s)

    def run(self):
        try:
            return self._run()
        finally:  # never leave a homeserver or a bot behind (CTest waits for them)
            if getattr(self, "obs", None):
                self.obs.stop = True
            if getattr(self, "bot", None):
                self.bot.stop()
            if getattr(self, "hs", None):
                self.hs.stop()

    def _run(self):
        a = self.args
        self.setup()
        set_load(self.hs, SEND_MS, SYNC_MS, WORKERS)
        runs = [self.run_mode("ping", "closed", per_sender=a.loaded_closed_n)]
        for rate in (20, 100):
            runs.append(self.run_mode("ping", "open", rate=rate, duration=a.loaded_open_s))
            # let the homeserver's queue drain before the next run
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                info = self.hs.api("GET", "/_test/load")
                if info["queued"] == 0 and info["busy"] == 0:
                    break
                time.sleep(0.1)
        mem = B.proc_mem_kb(self.pid)
        doubled = self.count_doubled()
        self.obs.stop = True
        self.obs.join(5)
        cpu = sum(r["bot_cpu_s"] for r in runs)
        n = sum(r["commands"] for r in runs)
        return {"bot": self.botname, "rooms": self.nrooms, "runs": runs,
                "lost": sum(r["missing_replies"] for r in runs),
                "doubled": doubled,
                "cpu_ms_per_command": round(cpu * 1000.0 / max(1, n), 3),
                "rss_peak_kb": mem.get("VmHWM"),
                "launch_to_first_reply_ms": round(self.first_reply_s * 1000, 1)}

    def count_doubled(self):
        """Commands answered more than once (every reply the homeserver
        holds, grouped by the event it replies to)."""
        doubled = 0
        for room in self.rooms:
            seen = {}
            for e in self.hs.all_events(room):
                c = e.get("content") or {}
                irt = ((c.get("m.relates_to") or {}).get("m.in_reply_to") or {}).get("event_id")
                if e.get("sender") == self.bot.user_id and irt:
                    seen[irt] = seen.get(irt, 0) + 1
            doubled += sum(n - 1 for n in seen.values() if n > 1)
        return doubled


def loaded_bench(args, out):
    bots = ["tlbot"] + ([] if args.smoke else ["botsdk", "nio"])
    notes = {}
    results = []
    for name in bots:
        if name != "tlbot":
            why = peer_available(name)
            if why:
                notes[name] = why
                B.log(f"loaded: {name} skipped: {why}")
                continue
        for nrooms in args.loaded_rooms:
            B.log(f"loaded: {name}, {nrooms} room(s), send {SEND_MS} ms, sync {SYNC_MS} ms, "
                  f"{WORKERS} workers")
            try:
                results.append(LoadedBench(args, out, name, nrooms).run())
            except Exception as e:  # a peer that breaks is a note, never a failure
                if name == "tlbot":
                    raise
                notes[name] = f"failed: {e}"
                B.log(f"loaded: {name} failed: {e}")
                break
    if args.smoke:
        notes["peers"] = "not run in a smoke run (bench/run --quick runs them)"
    out["loaded"] = {"send_ms": SEND_MS, "sync_ms": SYNC_MS, "workers": WORKERS,
                     "results": results, "skipped": notes}
    # headline keys: tlbot at 100/s (above capacity) and 20/s (below), 10 rooms
    for r in results:
        if r["bot"] != "tlbot" or r["rooms"] != max(args.loaded_rooms):
            continue
        for run in r["runs"]:
            if run["mode"] == "open":
                k = "above" if run["rate"] == 100 else "below"
                out["keys"][f"loaded_{k}_reply_p50_ms"] = run["reply_ms"].get("p50")
                out["keys"][f"loaded_{k}_reply_p99_ms"] = run["reply_ms"].get("p99")


def loaded_table(out, lines):
    L = out.get("loaded")
    if not L:
        return
    lines.append("")
    lines.append(f"loaded homeserver (send {L['send_ms']} ms, sync {L['sync_ms']} ms, "
                 f"{L['workers']} workers: {1000 * L['workers'] // L['send_ms']} sends/s; "
                 "!ping from 4 senders; ms)")
    lines.append(f"{'bot':8s} {'rooms':>5s} {'mode':6s} {'rate':>5s} {'n':>5s} {'lost':>4s} "
                 f"{'reply50':>8s} {'reply99':>8s} {'floor50':>8s} {'cpu ms/cmd':>10s} "
                 f"{'peak kB':>8s} {'1st reply':>9s}")
    best = {}
    for r in L["results"]:
        for run in r["runs"]:
            key = (r["rooms"], run["mode"], run["rate"])
            if r["bot"] != "tlbot":
                for f in ("p50", "p99"):
                    v = run["reply_ms"].get(f)
                    if v is not None and (best.get(key + (f,)) is None or v < best[key + (f,)]):
                        best[key + (f,)] = v
    for r in L["results"]:
        for run in r["runs"]:
            cpu = run["bot_cpu_s"] * 1000.0 / max(1, run["commands"])
            lines.append(
                f"{r['bot']:8s} {r['rooms']:5d} {run['mode']:6s} {str(run['rate'] or '-'):>5s} "
                f"{run['commands']:5d} {run['missing_replies']:4d} "
                f"{B.fmt(run['reply_ms'].get('p50')):>8s} {B.fmt(run['reply_ms'].get('p99')):>8s} "
                f"{B.fmt(run['floor_ms'].get('p50')):>8s} {cpu:10.3f} "
                f"{str(r['rss_peak_kb']):>8s} {r['launch_to_first_reply_ms']:9.0f}")
    ratios = []
    for r in L["results"]:
        if r["bot"] != "tlbot":
            continue
        for run in r["runs"]:
            key = (r["rooms"], run["mode"], run["rate"])
            for f in ("p50", "p99"):
                b, v = best.get(key + (f,)), run["reply_ms"].get(f)
                if b and v:
                    ratios.append(f"{r['rooms']}r {run['mode']} {run['rate'] or ''} {f} "
                                  f"{v / b:.2f}")
    if ratios:
        lines.append("tlbot / best peer: " + "; ".join(ratios))
    for name, why in L["skipped"].items():
        lines.append(f"note: {name} skipped: {why}")


# --------------------------------------------------------------------------
# 1,600 DM prompts due at the same minute
# --------------------------------------------------------------------------

def dm_burst_bench(args, out):
    """1,600 DM prompts across 200 rooms (8 people each) due at once, with
    a 40 ms send and 8 workers; meanwhile a command in another room. The
    prompts are committed to the bot's outbox in one transaction the way the
    stand-up job writes them (kind "dm", txnId tlbot.j.<job>.<n>, one job
    per room), each person's DM room already known (a daily prompt: the
    rooms exist after the first day). Measured: commit to the last prompt
    seen by the homeserver, and the command's reply time."""
    nrooms, per_room = args.dm_rooms, 8
    hs = B.mx.Homeserver(persist=False)
    bot = None
    try:
        alice = hs.register("alice")
        bot = B.mx.Bot(hs, os.path.join(args.work, "bot-dmburst"), config_extra=B.bot_config())
        bot.start()
        bot.wait_log(r"sync: starting|transport: ", timeout=15)
        cmd_room = alice.create_room(name="commands", invite=[bot.user_id])
        B.wait_joined(hs, B.Conn(hs.url, alice.token), bot.user_id, [cmd_room])
        bot.wait_idle(timeout=30)
        # the bot's DM rooms: one room per team here (8 people map to it),
        # made by the bot's user, so the prompts land in 200 rooms
        bconn = B.Conn(hs.url, hs.login("tlbot", "botpass").token)
        rooms = B.bulk_rooms(hs.url, bconn.token, nrooms, [], threads=4)
        db = sqlite3.connect(bot.db_path, timeout=30)
        deadline = time.monotonic() + 60  # the bot fetches each new room's members
        while time.monotonic() < deadline and db.execute(
                "SELECT COUNT(*) FROM outbox WHERE state = 'pending'").fetchone()[0]:
            time.sleep(0.1)
        with db:
            for i, r in enumerate(rooms):
                for k in range(per_room):
                    db.execute("INSERT OR REPLACE INTO dm_rooms(user_id, room_id) VALUES (?, ?)",
                               (f"@p{i}x{k}:localhost", r))
        set_load(hs, SEND_MS, SYNC_MS, 8)
        hs.reset_stats()
        content = json.dumps({"msgtype": "m.text", "body": "Stand-up: what did you do "
                              "yesterday, what today, any blockers?", "m.mentions": {}})
        t0 = time.monotonic()
        with db:
            for i in range(nrooms):
                for k in range(per_room):
                    db.execute("INSERT INTO outbox(txn_id, kind, user_id, event_type, content)"
                               " VALUES (?, 'dm', ?, 'm.room.message', ?)",
                               (f"tlbot.j.{900000 + i}.{k}", f"@p{i}x{k}:localhost", content))
        t_commit = time.monotonic()
        # the command typed at that minute
        ev = alice.send_text(cmd_room, "!ping")
        t_cmd = time.monotonic()
        obs_reply = None
        total = nrooms * per_room
        last = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            st = hs.stats()["by_user"].get(bot.user_id, {})
            n = st.get(SEND_TEMPLATE, 0)
            if obs_reply is None:
                for e in alice.events(cmd_room):
                    c = e.get("content") or {}
                    if ((c.get("m.relates_to") or {}).get("m.in_reply_to") or {}).get(
                            "event_id") == ev:
                        obs_reply = time.monotonic() - t_cmd
            if n >= total + 1 and last is None:
                last = time.monotonic() - t_commit
            if last is not None and obs_reply is not None:
                break
            time.sleep(0.05)
        pending = db.execute("SELECT COUNT(*) FROM outbox WHERE state = 'pending'").fetchone()[0]
        db.close()
        res = {"prompts": total, "rooms": nrooms, "send_ms": SEND_MS, "workers": 8,
               "last_prompt_s": round(last, 2) if last is not None else None,
               "command_reply_s": round(obs_reply, 3) if obs_reply is not None else None,
               "pending_after": pending, "commit_s": round(t_commit - t0, 3)}
        B.log(f"dm burst: {total} prompts in {nrooms} rooms: last sent after "
              f"{res['last_prompt_s']} s; a command at that minute answered in "
              f"{res['command_reply_s']} s")
        out["dm_burst"] = res
        out["keys"]["dm_burst_last_prompt_s"] = res["last_prompt_s"]
        out["keys"]["dm_burst_command_reply_s"] = res["command_reply_s"]
    finally:
        if bot:
            bot.stop()
        hs.stop()
