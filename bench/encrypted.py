"""The encrypted rows of bench/run (`--only e2ee`): what end-to-end
encryption costs.

- build/bench/bench_crypto: µs per decrypt and per encrypt of one message
  (through the bot's own code, inside its transactions) and the store's
  growth per 1,000 Megolm and per 1,000 Olm sessions;
- bench/e2ee_ping.py: a plain and an encrypted !ping, one at a time, against
  tlbot and against the reference peer bench/peers/nio with nio's own E2EE,
  each with the homeserver's floor (the command seen by another member).

e2ee_ping needs matrix-nio and olm, which Debian installs for /usr/bin/python3
only; the driver may run under another python (pyenv's), so it runs
e2ee_ping as a subprocess of /usr/bin/python3. Without nio there (e2ee_ping
exits 3) the ping rows are skipped with the reason printed; bench_crypto
still runs. Any other failure of e2ee_ping is an error of the run.
"""

import json
import os
import subprocess

import bench as B

NIO_PYTHON = "/usr/bin/python3"
PING = os.path.join(B.HERE, "e2ee_ping.py")


NIO_MISSING = (f"matrix-nio/olm not installed for {NIO_PYTHON} (Debian python3-matrix-nio, "
               "python3-olm)")
EXIT_NO_NIO = 3     # e2ee_ping.py's exit status when it cannot import nio or olm


def crypto_part(args, res, keys):
    argv = ["--dir", args.work] + (["--smoke"] if args.smoke else ["--quick"] if args.quick
                                   else [])
    r = B.run_c(os.path.join(args.build, "bench", "bench_crypto"), argv, 600)
    res["crypto"] = r
    keys["e2ee_decrypt_us_p50"] = r["decrypt"]["p50_us"]
    keys["e2ee_encrypt_us_p50"] = r["encrypt"]["p50_us"]
    keys["e2ee_store_bytes_per_1000_megolm_sessions"] = r["store_bytes_per_1000_megolm_inbound"]
    keys["e2ee_store_bytes_per_1000_olm_sessions"] = r["store_bytes_per_1000_olm_sessions"]
    B.log(f"e2ee: decrypt p50 {r['decrypt']['p50_us']:.0f} µs, encrypt p50 "
          f"{r['encrypt']['p50_us']:.0f} µs; {r['store_bytes_per_1000_megolm_inbound']} bytes per "
          f"1,000 Megolm sessions, {r['store_bytes_per_1000_olm_sessions']} per 1,000 Olm")


def ping_part(args, res, keys):
    why = None if os.path.exists(NIO_PYTHON) else f"{NIO_PYTHON} missing"
    if why is None:
        cmd = [NIO_PYTHON, PING, "--n", str(args.e2ee_n), "--work", args.work,
               "--bot", "tlbot", "--bot", "nio"]
        # its progress goes straight to our stderr; smoke: CTest gives the
        # whole of bench/run 120 s
        p = subprocess.run(cmd, stdout=subprocess.PIPE, text=True,
                           timeout=60 if args.smoke else 900)
        if p.returncode == EXIT_NO_NIO:
            why = NIO_MISSING
    if why:
        res["skipped"]["ping"] = why
        B.log(f"e2ee: the encrypted !ping rows are SKIPPED: {why}")
        return
    if p.returncode != 0:
        raise RuntimeError(f"e2ee_ping.py exited {p.returncode}")
    r = json.loads(p.stdout)
    res["ping"] = r
    for name, why in r["notes"].items():
        res["skipped"][name] = why
    res["skipped"]["botsdk"] = ("its crypto needs matrix-sdk-crypto-nodejs's native "
                                "library, which bench/peers/botsdk stubs (offline install)")
    for row in r["results"]:
        if row["bot"] != "tlbot":
            continue
        keys["e2ee_ping_plain_reply_p50_ms"] = row["plain"]["reply_ms"].get("p50")
        keys["e2ee_ping_encrypted_reply_p50_ms"] = row["encrypted"]["reply_ms"].get("p50")
        keys["e2ee_ping_extra_p50_ms"] = row["extra_reply_ms"]["p50"]
        keys["e2ee_ping_extra_p99_ms"] = row["extra_reply_ms"]["p99"]


def e2ee_bench(args, out):
    res = {"crypto": None, "ping": None, "skipped": {}}
    out["e2ee"] = res
    errors = []
    for part in (crypto_part, ping_part):
        try:
            part(args, res, out["keys"])
        except Exception as e:  # the other part still runs; bench.py reports the error
            errors.append(f"{part.__name__}: {e}")
    if errors:
        raise RuntimeError("; ".join(errors))


def e2ee_table(out, lines):
    E = out.get("e2ee")
    if not E:
        return
    fmt = B.fmt
    c = E.get("crypto")
    if c:
        lines.append("")
        lines.append("encryption cost (bench_crypto, µs per message; one file database, WAL):")
        for name, what in (("decrypt", "decrypt: one m.room.encrypted, in the batch transaction"),
                           ("decrypt_libolm_only", "  of which libolm: unpickle + Megolm decrypt"),
                           ("encrypt", "encrypt: one outbox row, Megolm + persist, one "
                                       "transaction")):
            r = c[name]
            lines.append(f"  {what:58s} n {r['n']:>5d}  p50 {r['p50_us']:>7.0f}  p99 "
                         f"{r['p99_us']:>7.0f}  mean {r['mean_us']:>7.0f}")
        lines.append(f"  store growth per 1,000 sessions (after VACUUM): Megolm inbound "
                     f"{c['store_bytes_per_1000_megolm_inbound']} bytes, Olm "
                     f"{c['store_bytes_per_1000_olm_sessions']} bytes")
    p = E.get("ping")
    if p:
        lines.append("")
        lines.append(f"plain vs encrypted !ping (ms; 1 sender, one command at a time, a plain "
                     f"and an encrypted room alternating, {p['n']} each;")
        lines.append("floor = the command seen by another member, added = reply seen minus "
                     "command seen; a reply counts once the sender has decrypted it)")
        lines.append(f"{'bot':7s}{'room':11s}{'n':>5s}{'miss':>5s}{'floor50':>9s}{'floor95':>9s}"
                     f"{'floor99':>9s}{'reply50':>9s}{'reply95':>9s}{'reply99':>9s}"
                     f"{'add50':>8s}{'add95':>8s}{'add99':>8s}{'cpu ms':>8s}{'first':>8s}")
        for r in p["results"]:
            for room in ("plain", "encrypted"):
                x = r[room]
                f, rp, ad = x["floor_ms"], x["reply_ms"], x["added_ms"]
                lines.append(
                    f"{r['bot']:7s}{room:11s}{x['commands']:>5d}{x['missing_replies']:>5d}"
                    f"{fmt(f.get('p50')):>9s}{fmt(f.get('p95')):>9s}{fmt(f.get('p99')):>9s}"
                    f"{fmt(rp.get('p50')):>9s}{fmt(rp.get('p95')):>9s}{fmt(rp.get('p99')):>9s}"
                    f"{fmt(ad.get('p50')):>8s}{fmt(ad.get('p95')):>8s}{fmt(ad.get('p99')):>8s}"
                    f"{x['bot_cpu_ms_per_command']:>8.1f}"
                    f"{fmt(r['first_reply_ms'].get(room)):>8s}")
        for r in p["results"]:
            e = r["extra_reply_ms"]
            bad = ""
            if r["undecryptable"] or r["plaintext_in_encrypted_room"]:
                bad = (f"; {r['undecryptable']} replies the sender could not decrypt, "
                       f"{r['plaintext_in_encrypted_room']} sent in clear in the encrypted room")
            lines.append(f"{r['bot']}: encrypted minus plain reply: p50 {fmt(e['p50'])}, p95 "
                         f"{fmt(e['p95'])}, p99 {fmt(e['p99'])} ms; its encrypted replies used "
                         f"{r.get('reply_megolm_sessions', '?')} Megolm session(s){bad}")
        lines.append("cpu ms = the bot's CPU per command (all its threads, from /proc/<pid>/task/"
                     "*/schedstat) between the command's PUT and its reply; first = the first command of each room, before the timed ones "
                     "(encrypted: incl. setting up the Olm and Megolm sessions)")
    for name, why in E.get("skipped", {}).items():
        lines.append(f"note: e2ee {name} skipped: {why}")
