/* What operators and data-protection officers need from the core, for the
 * admin family (commands/admin.c) and the housekeeping thread: the daemon's
 * status, the rooms, leaving a room, an online backup, and the walk over
 * every family's data-protection hooks plus the core's own tables. None of
 * it calls the network: a leave or a file is an outbox row. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "tlbot/clock.h"
#include "tlbot/ctx.h"
#include "tlbot/daemon.h"
#include "tlbot/log.h"
#include "tlbot/metrics.h"

struct tlbot_dp_export {
	json_t *root; /* key -> array of row objects */
	long long rows;
};

struct tlbot_dp_report {
	struct tlbot_buf text;
	long long rows;
};

static long long
file_size(const char *path, const char *suffix)
{
	char p[4200];
	struct stat sb;

	if (snprintf(p, sizeof(p), "%s%s", path, suffix) >= (int)sizeof(p))
		return -1;
	if (stat(p, &sb) != 0)
		return errno == ENOENT ? 0 : -1;
	return (long long)sb.st_size;
}

/* 1 if the database has table name (the crypto tables exist only once
 * encryption has run). */
static int
has_table(struct tlbot_ctx *ctx, const char *name)
{
	int64_t n = 0;

	return tlbot_db_int(ctx, &n,
	                    "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?",
	                    "t", name) == 0 &&
	       n > 0;
}

int
tlbot_ctx_status(struct tlbot_ctx *ctx, struct tlbot_status *out)
{
	int64_t n;

	memset(out, 0, sizeof(*out));
	out->version = TLBOT_VERSION;
	out->started = tlbot_metrics_start_time();
	out->last_sync = tlbot_metrics_last_sync_time();
	out->transport = tlbot_metrics_transport_name();
	out->transport_config = ctx->cfg->transport;
	out->database = ctx->cfg->database;
	out->db_bytes = file_size(ctx->cfg->database, "");
	out->wal_bytes = file_size(ctx->cfg->database, "-wal");
	tlbot_metrics_crypto(&out->olm_sessions, &out->megolm_inbound);
	if (tlbot_db_int(ctx, &n, "SELECT COUNT(*) FROM rooms WHERE membership = 'join'", "") != 0)
		return -1;
	out->rooms_joined = n;
	if (tlbot_db_int(ctx, &n, "SELECT COUNT(*) FROM outbox WHERE state = 'pending'", "") != 0)
		return -1;
	out->outbox_pending = n;
	out->encryption = ctx->cfg->encryption ? ctx->cfg->encryption : "off";
	if (tlbot_db_int(ctx, &n,
	                 "SELECT COUNT(*) FROM room_state s JOIN rooms r ON r.room_id = s.room_id"
	                 " WHERE s.type = 'm.room.encryption' AND s.state_key = ''"
	                 " AND r.membership = 'join'",
	                 "") != 0)
		return tlbot_db_error(ctx, "count encrypted rooms");
	out->encrypted_rooms = n;
	/* the crypto module's own counts, from its tables once it has run */
	if (has_table(ctx, "crypto_olm_sessions") &&
	    tlbot_db_int(ctx, &n, "SELECT COUNT(*) FROM crypto_olm_sessions", "") == 0)
		out->olm_sessions = n;
	if (has_table(ctx, "crypto_megolm_in") &&
	    tlbot_db_int(ctx, &n, "SELECT COUNT(*) FROM crypto_megolm_in", "") == 0)
		out->megolm_inbound = n;
	return 0;
}

int
tlbot_ctx_rooms_each(struct tlbot_ctx *ctx,
                     int (*fn)(void *arg, const char *room_id, const char *membership,
                               const char *name, time_t updated),
                     void *arg)
{
	struct tlbot_db_rows q;
	int n = 0, rc;

	if (tlbot_db_query(
	            ctx, &q,
	            "SELECT r.room_id, r.membership, (SELECT json_extract(st.content, '$.name')"
	            " FROM room_state st WHERE st.room_id = r.room_id AND st.type = 'm.room.name'"
	            " AND st.state_key = ''), r.updated_at FROM rooms r"
	            " ORDER BY r.membership <> 'join', r.membership, r.room_id",
	            "") != 0)
		return -1;
	while ((rc = tlbot_db_next(&q)) > 0) {
		n++;
		if (fn(arg, tlbot_db_col_text(&q, 0), tlbot_db_col_text(&q, 1),
		       tlbot_db_col_text(&q, 2), (time_t)tlbot_db_col_int(&q, 3)) != 0)
			break;
	}
	tlbot_db_done(&q);
	return rc < 0 ? -1 : n;
}

int
tlbot_ctx_leave_room(struct tlbot_ctx *ctx, const char *room_id)
{
	char *m = NULL;
	int rc = tlbot_store_room_membership(ctx->st, room_id, &m);

	if (rc < 0)
		return tlbot_db_error(ctx, "room membership");
	if (rc == 1 || m == NULL || (strcmp(m, "join") != 0 && strcmp(m, "invite") != 0)) {
		free(m);
		return 1;
	}
	free(m);
	if (tlbot_store_room_set(ctx->st, room_id, "leave", NULL) != 0)
		return tlbot_db_error(ctx, "mark room left");
	if (tlbot_ctx_enqueue(ctx, "leave", room_id, NULL, NULL) != 0)
		return -1;
	log_info("room %s: leaving (asked by %s)", room_id, ctx->sender ? ctx->sender : "-");
	return 0;
}

int
tlbot_ctx_backup(struct tlbot_ctx *ctx, char **path, long long *bytes, char *integrity,
                 size_t integritylen)
{
	char stamp[32], p[4200];
	sqlite3 *src = NULL, *dst = NULL;
	sqlite3_backup *b;
	sqlite3_stmt *s;
	time_t now = time(NULL);
	struct tm tm;
	int fd = -1, i, rc = -1, copied = 0;

	*path = NULL;
	*bytes = 0;
	snprintf(integrity, integritylen, "not checked");
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", &tm);
	for (i = 1; i < 100 && fd < 0; i++) {
		int n = i == 1 ? snprintf(p, sizeof(p), "%s.backup-%s", ctx->cfg->database, stamp)
		               : snprintf(p, sizeof(p), "%s.backup-%s-%d", ctx->cfg->database,
		                          stamp, i);

		if (n >= (int)sizeof(p)) {
			snprintf(integrity, integritylen, "the backup path is too long");
			return -1;
		}
		/* 0600: the copy holds the access token, as the database does */
		fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0600);
		if (fd < 0 && errno != EEXIST) {
			snprintf(integrity, integritylen, "cannot create %s: %s", p,
			         strerror(errno));
			return -1;
		}
	}
	if (fd < 0) {
		snprintf(integrity, integritylen,
		         "cannot create a backup file beside the database");
		return -1;
	}
	close(fd);
	/* a connection of its own reads the last committed state, not the
	 * batch this command runs in */
	if (sqlite3_open_v2(ctx->cfg->database, &src, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
	    sqlite3_open_v2(p, &dst, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
		snprintf(integrity, integritylen, "cannot open: %s",
		         sqlite3_errmsg(dst ? dst : src));
		goto out;
	}
	sqlite3_busy_timeout(src, 5000);
	b = sqlite3_backup_init(dst, "main", src, "main");
	if (b == NULL) {
		snprintf(integrity, integritylen, "backup: %s", sqlite3_errmsg(dst));
		goto out;
	}
	i = sqlite3_backup_step(b, -1);
	sqlite3_backup_finish(b);
	if (i != SQLITE_DONE) {
		snprintf(integrity, integritylen, "backup: %s", sqlite3_errstr(i));
		goto out;
	}
	copied = 1;
	/* the backup's own connection, not the batch's (tlbot_db_* is for those) */
	s = NULL;
	if (sqlite3_prepare_v2(dst, "PRAGMA integrity_check", -1, &s, NULL) == SQLITE_OK &&
	    sqlite3_step(s) == SQLITE_ROW) {
		snprintf(integrity, integritylen, "%s", (const char *)sqlite3_column_text(s, 0));
		rc = strcmp(integrity, "ok") == 0 ? 0 : -1;
	} else {
		snprintf(integrity, integritylen, "integrity_check: %s", sqlite3_errmsg(dst));
	}
	sqlite3_finalize(s);
out:
	sqlite3_close(src);
	sqlite3_close(dst);
	*bytes = file_size(p, "");
	if (!copied)
		unlink(p); /* a half copy is no backup; a copy that fails its check is kept to look
		              at */
	*path = strdup(p);
	log_info("backup of %s to %s: %lld bytes, integrity %s", ctx->cfg->database, p, *bytes,
	         integrity);
	return *path ? rc : -1;
}

/* ---- data protection ---- */

static sqlite3_stmt *
prep_bound(struct tlbot_ctx *ctx, const char *sql, const char *a, const char *b, int64_t n)
{
	sqlite3_stmt *s;
	int np;

	if (sqlite3_prepare_v2(ctx->st->db, sql, -1, &s, NULL) != SQLITE_OK)
		return NULL;
	np = sqlite3_bind_parameter_count(s);
	if (a && np >= 1)
		sqlite3_bind_text(s, 1, a, -1, SQLITE_TRANSIENT);
	else if (np >= 1)
		sqlite3_bind_int64(s, 1, n);
	if (np >= 2)
		sqlite3_bind_text(s, 2, b, -1, SQLITE_TRANSIENT);
	return s;
}

static json_t *
column_json(sqlite3_stmt *s, int i)
{
	json_t *v;

	switch (sqlite3_column_type(s, i)) {
	case SQLITE_INTEGER:
		return json_integer(sqlite3_column_int64(s, i));
	case SQLITE_FLOAT:
		return json_real(sqlite3_column_double(s, i));
	case SQLITE_TEXT:
		v = json_stringn((const char *)sqlite3_column_text(s, i),
		                 (size_t)sqlite3_column_bytes(s, i));
		return v ? v : json_string("(not valid UTF-8)");
	case SQLITE_BLOB:
		return json_pack("{s:i}", "blob_bytes", sqlite3_column_bytes(s, i));
	default:
		return json_null();
	}
}

int
tlbot_dp_export(struct tlbot_ctx *ctx, struct tlbot_dp_export *out, const char *key,
                const char *sql, const char *user_id)
{
	sqlite3_stmt *s = prep_bound(ctx, sql, user_id, NULL, 0);
	json_t *arr = json_object_get(out->root, key);
	int n = 0, rc, i;

	if (s == NULL)
		return tlbot_db_error(ctx, key);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		json_t *row = json_object();

		for (i = 0; row && i < sqlite3_column_count(s); i++)
			json_object_set_new(row, sqlite3_column_name(s, i), column_json(s, i));
		if (arr == NULL) {
			arr = json_array();
			json_object_set_new(out->root, key, arr);
		}
		json_array_append_new(arr, row);
		n++;
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE)
		return tlbot_db_error(ctx, key);
	out->rows += n;
	return n;
}

static void
note(struct tlbot_dp_report *r, const char *what, int n)
{
	if (n > 0)
		tlbot_buf_printf(&r->text, "%s%s: %d", r->text.len ? "\n" : "", what, n);
	r->rows += n;
}

/* Run the prepared change s (NULL: preparing failed) and note "what: N"
 * in the report. Returns rows changed, or -1 (tlbot_db_error called). */
static int
run_change(struct tlbot_ctx *ctx, struct tlbot_dp_report *report, const char *what,
           sqlite3_stmt *s)
{
	int n;

	if (s == NULL || sqlite3_step(s) != SQLITE_DONE) {
		sqlite3_finalize(s);
		return tlbot_db_error(ctx, what);
	}
	sqlite3_finalize(s);
	n = sqlite3_changes(ctx->st->db);
	note(report, what, n);
	return n;
}

int
tlbot_dp_forget(struct tlbot_ctx *ctx, struct tlbot_dp_report *report, const char *what,
                const char *sql, const char *user_id, const char *pseudonym)
{
	return run_change(ctx, report, what, prep_bound(ctx, sql, user_id, pseudonym, 0));
}

int
tlbot_dp_retain(struct tlbot_ctx *ctx, struct tlbot_dp_report *report, const char *what,
                const char *sql, time_t before)
{
	return run_change(ctx, report, what, prep_bound(ctx, sql, NULL, NULL, (int64_t)before));
}

/* What a walk over a table of steps calls each step with. */
struct dp_walk {
	struct tlbot_dp_export *out; /* export: the document */
	struct tlbot_dp_report *report; /* forget, retain: the report */
	const char *user_id, *pseudonym;
	time_t before;
};

/* Run every step of steps with w (export when w->out is set, forget when
 * w->user_id is, else retain). Returns the rows in all, or -1. */
static int
walk_steps(struct tlbot_ctx *ctx, const struct tlbot_dp_step *steps, const struct dp_walk *w)
{
	int n = 0, k;

	for (; steps->label; steps++) {
		if (w->out)
			k = tlbot_dp_export(ctx, w->out, steps->label, steps->sql, w->user_id);
		else if (w->user_id)
			k = tlbot_dp_forget(ctx, w->report, steps->label, steps->sql, w->user_id,
			                    w->pseudonym);
		else
			k = tlbot_dp_retain(ctx, w->report, steps->label, steps->sql, w->before);
		if (k < 0)
			return -1;
		n += k;
	}
	return n;
}

int
tlbot_dp_export_steps(struct tlbot_ctx *ctx, struct tlbot_dp_export *out,
                      const struct tlbot_dp_step *steps, const char *user_id)
{
	struct dp_walk w = {.out = out, .user_id = user_id};

	return walk_steps(ctx, steps, &w);
}

int
tlbot_dp_forget_steps(struct tlbot_ctx *ctx, struct tlbot_dp_report *report,
                      const struct tlbot_dp_step *steps, const char *user_id,
                      const char *pseudonym)
{
	struct dp_walk w = {.report = report, .user_id = user_id, .pseudonym = pseudonym};

	return walk_steps(ctx, steps, &w);
}

int
tlbot_dp_retain_steps(struct tlbot_ctx *ctx, struct tlbot_dp_report *report,
                      const struct tlbot_dp_step *steps, time_t before)
{
	struct dp_walk w = {.report = report, .before = before};

	return walk_steps(ctx, steps, &w);
}

/* The core's own tables: preferences, the DM room, invites, the mirror of
 * their room membership, messages addressed to them. */
static const struct tlbot_dp_step core_export_steps[] = {
        {"core.preferences", "SELECT user_id, dm_enabled FROM user_prefs WHERE user_id = ?1"},
        {"core.direct_message_room", "SELECT user_id, room_id FROM dm_rooms WHERE user_id = ?1"},
        {"core.invites_from",
         "SELECT room_id, membership, updated_at FROM rooms WHERE inviter = ?1"},
        {"core.room_membership",
         "SELECT room_id, json_extract(content, '$.membership') AS membership,"
         " json_extract(content, '$.displayname') AS displayname FROM room_state"
         " WHERE type = 'm.room.member' AND state_key = ?1"},
        {"core.messages_to", "SELECT txn_id, kind, room_id, state, created_at, done_at, content"
                             " FROM outbox WHERE user_id = ?1 ORDER BY id"},
        {"core.scheduled_jobs_naming",
         "SELECT kind, key, room_id, due, state, payload FROM jobs"
         " WHERE instr(key, ?1) > 0 OR instr(payload, ?1) > 0 ORDER BY id"},
        TLBOT_DP_STEPS_END,
};

/* encryption (bot/crypto/), read only */
static const struct tlbot_dp_step crypto_export_steps[] = {
        {"crypto.devices", "SELECT user_id, device_id, curve25519, ed25519 FROM crypto_devices"
                           " WHERE user_id = ?1"},
        {"crypto.undecrypted_events",
         "SELECT event_id, room_id, created_ms FROM crypto_pending WHERE sender = ?1"},
        TLBOT_DP_STEPS_END,
};

static int
core_export(struct tlbot_ctx *ctx, const char *u, struct tlbot_dp_export *out)
{
	if (tlbot_dp_export_steps(ctx, out, core_export_steps, u) < 0)
		return -1;
	/* encryption (bot/crypto/): the device keys their homeserver publishes
	 * and encrypted events of theirs still waiting for a key; read only:
	 * the crypto module keeps them while they share an encrypted room */
	if (has_table(ctx, "crypto_devices") &&
	    tlbot_dp_export_steps(ctx, out, crypto_export_steps, u) < 0)
		return -1;
	return 0;
}

static const struct tlbot_dp_step core_forget_steps[] = {
        {"preferences deleted", "DELETE FROM user_prefs WHERE user_id = ?1"},
        {"direct-message room forgotten", "DELETE FROM dm_rooms WHERE user_id = ?1"},
        {"invites pseudonymised", "UPDATE rooms SET inviter = ?2 WHERE inviter = ?1"},
        /* the mirror of a room they have left; a current member's stays,
         * as the homeserver shows it to the room anyway */
        {"room membership of rooms they left deleted",
         "DELETE FROM room_state WHERE type = 'm.room.member' AND state_key = ?1"
         " AND IFNULL(json_extract(content, '$.membership'), '')"
         " NOT IN ('join', 'invite')"},
        {"sent messages to them deleted",
         "DELETE FROM outbox WHERE user_id = ?1 AND state <> 'pending'"},
        {"sent messages naming them pseudonymised",
         "UPDATE outbox SET content = replace(content, ?1, ?2)"
         " WHERE state <> 'pending' AND instr(content, ?1) > 0"},
        /* jobs for them alone (their stand-up prompt, their tour's end)
         * are cancelled; others that name them keep running, pseudonymised */
        {"scheduled jobs for them cancelled",
         "UPDATE jobs SET state = 'cancelled', key = replace(key, ?1, ?2),"
         " payload = replace(payload, ?1, ?2)"
         " WHERE state = 'pending' AND instr(key, ?1) > 0"},
        {"scheduled jobs naming them pseudonymised",
         "UPDATE jobs SET key = replace(key, ?1, ?2), payload = replace(payload, ?1, ?2)"
         " WHERE instr(key, ?1) > 0 OR instr(payload, ?1) > 0"},
        TLBOT_DP_STEPS_END,
};

static int
core_forget(struct tlbot_ctx *ctx, const char *u, const char *p, struct tlbot_dp_report *r)
{
	return tlbot_dp_forget_steps(ctx, r, core_forget_steps, u, p) < 0 ? -1 : 0;
}

int
tlbot_dp_export_user(struct tlbot_ctx *ctx, const char *user_id, char **json, size_t *len,
                     long long *rows)
{
	struct tlbot_dp_export ex = {json_object(), 0};
	json_t *doc = NULL;
	size_t i;
	int rc = -1;

	*json = NULL;
	*len = 0;
	*rows = 0;
	if (ex.root == NULL)
		return -1;
	if (core_export(ctx, user_id, &ex) != 0)
		goto out;
	for (i = 0; tlbot_commands[i]; i++)
		if (tlbot_commands[i]->export_user &&
		    tlbot_commands[i]->export_user(ctx, user_id, &ex) < 0)
			goto out;
	doc = json_pack("{s:s, s:s, s:I, s:s, s:I, s:O}", "subject", user_id, "generated_by",
	                "tlbot " TLBOT_VERSION, "generated_at", (json_int_t)tlbot_ctx_now(ctx),
	                "database", ctx->cfg->database, "records", (json_int_t)ex.rows, "data",
	                ex.root);
	*json = doc ? json_dumps(doc, JSON_INDENT(1) | JSON_SORT_KEYS) : NULL;
	if (*json) {
		*len = strlen(*json);
		*rows = ex.rows;
		rc = 0;
	}
out:
	json_decref(doc);
	json_decref(ex.root);
	return rc;
}

int
tlbot_dp_forget_user(struct tlbot_ctx *ctx, const char *user_id, char *pseudonym,
                     size_t pseudonymlen, char **report)
{
	struct tlbot_dp_report r;
	int64_t n = tlbot_ctx_next_id(ctx, "dp.pseudonym");
	size_t i;

	*report = NULL;
	if (n < 0)
		return tlbot_db_error(ctx, "next pseudonym");
	snprintf(pseudonym, pseudonymlen, "former member %lld", (long long)n);
	memset(&r, 0, sizeof(r));
	tlbot_buf_init(&r.text, 64 * 1024);
	if (core_forget(ctx, user_id, pseudonym, &r) != 0)
		goto fail;
	for (i = 0; tlbot_commands[i]; i++)
		if (tlbot_commands[i]->forget_user &&
		    tlbot_commands[i]->forget_user(ctx, user_id, pseudonym, &r) < 0)
			goto fail;
	*report = tlbot_buf_detach(&r.text);
	tlbot_buf_release(&r.text);
	return (int)r.rows;
fail:
	tlbot_buf_release(&r.text);
	return -1;
}

int
tlbot_dp_retention(struct tlbot_ctx *ctx, time_t before, char **report)
{
	struct tlbot_dp_report r;
	size_t i;

	if (report)
		*report = NULL;
	memset(&r, 0, sizeof(r));
	tlbot_buf_init(&r.text, 64 * 1024);
	for (i = 0; tlbot_commands[i]; i++)
		if (tlbot_commands[i]->retain && tlbot_commands[i]->retain(ctx, before, &r) < 0) {
			tlbot_buf_release(&r.text);
			return -1;
		}
	if (report)
		*report = tlbot_buf_detach(&r.text);
	tlbot_buf_release(&r.text);
	return (int)r.rows;
}

int
tlbot_retention_run(const struct tlbot_config *cfg, const char *bot_user)
{
	struct tlbot_store st;
	struct tlbot_ctx ctx;
	time_t before = tlbot_clock_now() - (time_t)cfg->retention_days * 86400;
	char *report = NULL;
	int n;

	if (tlbot_store_open(&st, cfg->database, 0) != 0)
		return -1;
	tlbot_ctx_init(&ctx, cfg, &st, bot_user);
	if (tlbot_store_begin(&st) != 0) {
		n = -1;
		goto out;
	}
	n = tlbot_dp_retention(&ctx, before, &report);
	if (n < 0 || ctx.db_failed || tlbot_store_commit(&st) != 0) {
		tlbot_store_rollback(&st);
		log_error(
		        "retention: could not delete records older than %d days; retrying tomorrow",
		        cfg->retention_days);
		n = -1;
	} else if (n > 0) {
		char *p;

		for (p = report; p && *p; p++)
			if (*p == '\n')
				*p = ',';
		log_info("retention: deleted %d records older than %d days (%s)", n,
		         cfg->retention_days, report ? report : "");
	} else {
		log_debug("retention: nothing older than %d days", cfg->retention_days);
	}
out:
	free(report);
	tlbot_ctx_release(&ctx);
	tlbot_store_close(&st);
	return n;
}
