/* !admin: the operator's and the data-protection officer's commands, for
 * configured admins only, in a direct message or any room. Like every
 * family they read and write the store and enqueue outbox rows; the core
 * (bot/core/ops.c) gives the daemon's figures, the backup, and the walk
 * over every family's data-protection hooks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tlbot/command.h"

#define CONFIRM_TTL_S 600

static const char *const migrations[] = {
        /* 1: pending confirmations of !admin forget */
        "CREATE TABLE admin_confirm (code TEXT PRIMARY KEY, action TEXT NOT NULL,"
        "  target TEXT NOT NULL, admin TEXT NOT NULL, expires INTEGER NOT NULL);",
        NULL,
};
static const struct tlbot_schema schema = {"admin", migrations};

/* "1 h 5 min", "3 d 2 h", "42 s" */
static void
duration(char *out, size_t len, long long s)
{
	if (s < 0)
		s = 0;
	if (s >= 86400)
		snprintf(out, len, "%lld d %lld h", s / 86400, s % 86400 / 3600);
	else if (s >= 3600)
		snprintf(out, len, "%lld h %lld min", s / 3600, s % 3600 / 60);
	else if (s >= 60)
		snprintf(out, len, "%lld min %lld s", s / 60, s % 60);
	else
		snprintf(out, len, "%lld s", s);
}

static void
bytes(char *out, size_t len, long long b)
{
	if (b < 0)
		snprintf(out, len, "unknown");
	else if (b >= 10 * 1024 * 1024)
		snprintf(out, len, "%.1f MB", (double)b / (1024.0 * 1024.0));
	else if (b >= 10 * 1024)
		snprintf(out, len, "%.1f kB", (double)b / 1024.0);
	else
		snprintf(out, len, "%lld bytes", b);
}

static int
cmd_status(struct tlbot_ctx *ctx, const struct tlbot_args *args)
{
	struct tlbot_status st;
	struct tlbot_msg m;
	time_t now = time(NULL);
	char up[64], ago[64], db[32], wal[32];

	(void)args;
	if (tlbot_ctx_status(ctx, &st) != 0)
		return -1;
	duration(up, sizeof(up), (long long)(now - st.started));
	duration(ago, sizeof(ago), (long long)(now - st.last_sync));
	bytes(db, sizeof(db), st.db_bytes);
	bytes(wal, sizeof(wal), st.wal_bytes);
	tlbot_msg_init(&m);
	tlbot_msg_bold(&m, "tlbot status");
	tlbot_msg_br(&m);
	tlbot_msg_textf(&m, "version: %s", st.version);
	tlbot_msg_br(&m);
	tlbot_msg_textf(&m, "uptime: %s", up);
	tlbot_msg_br(&m);
	tlbot_msg_textf(&m, "transport: %s (configured: %s)", st.transport, st.transport_config);
	tlbot_msg_br(&m);
	tlbot_msg_textf(&m, "rooms joined: %lld", st.rooms_joined);
	tlbot_msg_br(&m);
	tlbot_msg_textf(&m, "outbox: %lld waiting", st.outbox_pending);
	tlbot_msg_br(&m);
	if (st.last_sync > 0)
		tlbot_msg_textf(&m, "last sync: %s ago", ago);
	else
		tlbot_msg_text(&m, "last sync: none yet");
	tlbot_msg_br(&m);
	tlbot_msg_textf(&m, "database: %s, %s (write-ahead log %s)", st.database, db, wal);
	tlbot_msg_br(&m);
	if (strcmp(st.encryption, "on") != 0)
		tlbot_msg_text(&m, "encryption: off (encrypted rooms are not read)");
	else if (st.olm_sessions >= 0)
		tlbot_msg_textf(
		        &m,
		        "encryption: on, %lld encrypted rooms (%lld Olm sessions, %lld Megolm "
		        "inbound sessions)",
		        st.encrypted_rooms, st.olm_sessions,
		        st.megolm_inbound < 0 ? 0 : st.megolm_inbound);
	else
		tlbot_msg_textf(&m, "encryption: on, %lld encrypted rooms", st.encrypted_rooms);
	return tlbot_reply(ctx, &m);
}

struct rooms_acc {
	struct tlbot_msg *m;
	int n;
};

static int
add_room(void *arg, const char *room_id, const char *membership, const char *name, time_t updated)
{
	struct rooms_acc *a = arg;
	char day[16];
	struct tm tm;

	gmtime_r(&updated, &tm);
	strftime(day, sizeof(day), "%Y-%m-%d", &tm);
	if (a->n++ > 0)
		tlbot_msg_br(a->m);
	tlbot_msg_textf(a->m, "%s  %s  %s since %s", room_id, name && *name ? name : "(no name)",
	                membership, day);
	return a->n >= 200; /* a message holds about this many */
}

static int
cmd_rooms(struct tlbot_ctx *ctx, const struct tlbot_args *args)
{
	struct tlbot_msg m;
	struct rooms_acc a = {&m, 0};
	int n;

	(void)args;
	tlbot_msg_init(&m);
	tlbot_msg_bold(&m, "Rooms I know");
	tlbot_msg_br(&m);
	n = tlbot_ctx_rooms_each(ctx, add_room, &a);
	if (n < 0) {
		tlbot_msg_release(&m);
		return -1;
	}
	if (n == 0)
		tlbot_msg_text(&m, "none");
	else if (n > a.n)
		tlbot_msg_textf(&m, "\n(and %d more)", n - a.n);
	return tlbot_reply(ctx, &m);
}

static int
cmd_leave(struct tlbot_ctx *ctx, const struct tlbot_args *args)
{
	const char *room = args->argv[0]; /* a room id: dispatch checked it */
	int rc;

	rc = tlbot_ctx_leave_room(ctx, room);
	if (rc < 0)
		return -1;
	if (rc == 1)
		return tlbot_fail(ctx, "I am not in %s (%sadmin rooms lists the rooms I am in)",
		                  room, tlbot_ctx_prefix(ctx));
	if (tlbot_ctx_room(ctx) && strcmp(tlbot_ctx_room(ctx), room) == 0)
		return tlbot_replyf(ctx, "Leaving this room. Its records stay in the database.");
	return tlbot_replyf(ctx,
	                    "Leaving %s. Its records stay in the database; invite me back to "
	                    "use them again.",
	                    room);
}

static int
cmd_backup(struct tlbot_ctx *ctx, const struct tlbot_args *args)
{
	char *path = NULL, integrity[512], size[32];
	long long n;
	int rc;

	(void)args;
	rc = tlbot_ctx_backup(ctx, &path, &n, integrity, sizeof(integrity));
	bytes(size, sizeof(size), n);
	if (rc != 0) {
		rc = tlbot_fail(ctx, "backup failed: %s (%s)", integrity, path ? path : "no file");
		free(path);
		return rc;
	}
	rc = tlbot_replyf(ctx, "Backed up the database to %s: %s, integrity check %s.", path, size,
	                  integrity);
	free(path);
	return rc;
}

/* USER lets a name through for families that resolve one ("me", "Erin");
 * admin wants the id itself. A full id was checked in dispatch. */
static int
check_user(struct tlbot_ctx *ctx, const char *u)
{
	if (u[0] != '@' || strchr(u, ':') == NULL)
		return tlbot_fail(ctx, "'%s' is not a user id (@name:server)", u);
	return 0;
}

static int
cmd_export_user(struct tlbot_ctx *ctx, const struct tlbot_args *args)
{
	const char *u = args->argv[0], *colon;
	char *json = NULL, fname[160], caption[400], day[16];
	size_t len;
	long long rows;
	time_t now = tlbot_ctx_now(ctx);
	struct tm tm;
	int rc;

	if (check_user(ctx, u) != 0)
		return -1;
	if (tlbot_dp_export_user(ctx, u, &json, &len, &rows) != 0)
		return -1;
	gmtime_r(&now, &tm);
	strftime(day, sizeof(day), "%Y-%m-%d", &tm);
	colon = strchr(u, ':');
	snprintf(fname, sizeof(fname), "tlbot-export-%.*s-%s.json", (int)(colon - u - 1), u + 1,
	         day);
	snprintf(caption, sizeof(caption), "Everything tlbot holds about %s (%lld records), %s", u,
	         rows, day);
	if (tlbot_ctx_is_dm(ctx))
		rc = tlbot_send_file(ctx, tlbot_ctx_room(ctx), fname, "application/json", json, len,
		                     caption);
	else
		rc = tlbot_send_file_dm(ctx, tlbot_ctx_sender(ctx), fname, "application/json", json,
		                        len, caption);
	free(json);
	if (rc != 0)
		return tlbot_fail(ctx, "the export is too large to send (%zu bytes)", len);
	return tlbot_replyf(ctx, "Export of %s: %lld records, %zu bytes, sent as %s %s.", u, rows,
	                    len, fname, tlbot_ctx_is_dm(ctx) ? "here" : "to you by direct message");
}

/* What forgetting u would change: the report of a run rolled back. */
static int
dry_run(struct tlbot_ctx *ctx, const char *u, char **report)
{
	char pseudonym[64];
	int n;

	if (tlbot_db_exec(ctx, "SAVEPOINT admin_dry", "") != 0)
		return tlbot_db_error(ctx, "savepoint");
	n = tlbot_dp_forget_user(ctx, u, pseudonym, sizeof(pseudonym), report);
	if (tlbot_db_exec(ctx, "ROLLBACK TO admin_dry", "") != 0 ||
	    tlbot_db_exec(ctx, "RELEASE admin_dry", "") != 0) {
		free(*report);
		*report = NULL;
		return tlbot_db_error(ctx, "rollback");
	}
	return n;
}

static int
cmd_forget(struct tlbot_ctx *ctx, const struct tlbot_args *args)
{
	const char *u = args->argv[0], *sender = tlbot_ctx_sender(ctx);
	time_t now = tlbot_ctx_now(ctx);
	char *report = NULL, code[16], pseudonym[64];
	int64_t found;
	int n, rc;

	if (check_user(ctx, u) != 0)
		return -1;
	if (args->argc == 1) {
		n = dry_run(ctx, u, &report);
		if (n < 0)
			return -1;
		if (n == 0) {
			free(report);
			return tlbot_replyf(ctx, "I hold nothing about %s: nothing to forget.", u);
		}
		snprintf(code, sizeof(code), "%06lx", (unsigned long)(random() % 0x1000000));
		if (tlbot_db_exec(ctx,
		                  "DELETE FROM admin_confirm WHERE expires < ?1 OR"
		                  " (action = 'forget' AND target = ?2 AND admin = ?3)",
		                  "itt", (int64_t)now, u, sender) != 0 ||
		    tlbot_db_exec(ctx,
		                  "INSERT INTO admin_confirm(code, action, target, admin, expires)"
		                  " VALUES (?, 'forget', ?, ?, ?)",
		                  "ttti", code, u, sender, (int64_t)(now + CONFIRM_TTL_S)) != 0) {
			free(report);
			return tlbot_db_error(ctx, "store confirmation");
		}
		rc = tlbot_replyf(
		        ctx,
		        "Forgetting %s would change %d records:\n%s\nTheir stand-up answers "
		        "and reminders are deleted; their name in records and history becomes "
		        "a pseudonym. This cannot be undone. To go ahead, send within 10 "
		        "minutes: %sadmin forget %s confirm %s",
		        u, n, report ? report : "", tlbot_ctx_prefix(ctx), u, code);
		free(report);
		return rc;
	}
	/* dispatch let argv[1] be only "confirm": only the code can be missing */
	if (args->argc != 3)
		return tlbot_fail(ctx,
		                  "usage: %sadmin forget @user, then %sadmin forget @user confirm "
		                  "CODE",
		                  tlbot_ctx_prefix(ctx), tlbot_ctx_prefix(ctx));
	rc = tlbot_db_int(ctx, &found,
	                  "SELECT COUNT(*) FROM admin_confirm WHERE code = ? AND action = 'forget'"
	                  " AND target = ? AND admin = ? AND expires >= ?",
	                  "ttti", args->argv[2], u, sender, (int64_t)now);
	if (rc != 0)
		return tlbot_db_error(ctx, "read confirmation");
	if (found == 0)
		return tlbot_fail(ctx,
		                  "no such confirmation for %s (codes last 10 minutes and only "
		                  "for the admin who asked): send %sadmin forget %s again",
		                  u, tlbot_ctx_prefix(ctx), u);
	if (tlbot_db_exec(ctx, "DELETE FROM admin_confirm WHERE code = ?", "t", args->argv[2]) != 0)
		return tlbot_db_error(ctx, "use confirmation");
	n = tlbot_dp_forget_user(ctx, u, pseudonym, sizeof(pseudonym), &report);
	if (n < 0)
		return -1;
	rc = tlbot_replyf(ctx, "Forgot %s: %d records changed, now shown as \"%s\":\n%s", u, n,
	                  pseudonym, report && *report ? report : "(nothing held any more)");
	free(report);
	return rc;
}

static const struct tlbot_param leave_params[] = {
        {TLBOT_ROOM_ID("room"), .desc = "the room id"},
        {.name = NULL}};
static const struct tlbot_param user_params[] = {{TLBOT_USER("user"), .desc = "the person"},
                                                 {.name = NULL}};
static const struct tlbot_param forget_params[] = {
        {TLBOT_USER("user"), .desc = "the person"},
        {TLBOT_ENUM("confirm", "confirm"), .mode = TLBOT_OPTIONAL, .desc = "confirm"},
        {TLBOT_TEXT("code", 0), .mode = TLBOT_OPTIONAL | TLBOT_WORD, .label = "CODE",
         .desc = "the code I sent"},
        {.name = NULL}};

static const struct tlbot_subcmd subcmds[] = {
        {"status", "version, uptime, transport, rooms, outbox, last sync, database",
         TLBOT_PERM_ADMIN, NULL, cmd_status, "status", TLBOT_SUB_READS},
        {"rooms", "the rooms I know and my membership", TLBOT_PERM_ADMIN, NULL, cmd_rooms, "rooms",
         TLBOT_SUB_READS},
        {"leave", "leave a room (its records stay)", TLBOT_PERM_ADMIN, leave_params, cmd_leave,
         "leave !abc:example.org", 0},
        {"backup", "online backup of the database beside it, with an integrity check",
         TLBOT_PERM_ADMIN, NULL, cmd_backup, "backup", 0},
        {"export-user", "everything held about a person, as a JSON file by direct message",
         TLBOT_PERM_ADMIN, user_params, cmd_export_user, "export-user @sam:example.org", 0},
        {"forget", "erase a person: answers and reminders deleted, their name pseudonymised",
         TLBOT_PERM_ADMIN, forget_params, cmd_forget, "forget @sam:example.org", 0},
        {NULL, NULL, 0, NULL, NULL, NULL, 0},
};

const struct tlbot_cmd tlbot_cmd_admin = {
        .name = "admin",
        .summary = "operate the bot and answer for its data (configured admins only)",
        .help = "Status and rooms for operators, an online backup, and for data protection: "
                "export-user (a subject access request answered in one file) and forget (erasure, "
                "with a confirmation). Works in a direct message with me or in any room.",
        .subcmds = subcmds,
        .schema = &schema,
};
