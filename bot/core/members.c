/* People as the bot knows them: room members (m.room.member state from
 * /sync and from the /joined_members the worker asks when the bot joins),
 * display names, and what the homeserver's profile lookup said of users
 * who are not in the room. Commands never call the network: a handler that
 * meets an unknown user asks for a lookup (tlbot_ctx_lookup_user) and
 * refuses; the router enqueues the lookup after the command, the worker
 * asks GET /profile, stores the answer and runs the command again once. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tlbot/ctx.h"

/* Prepare sql with up to two text parameters (NULL binds NULL). */
static sqlite3_stmt *
prep2(struct tlbot_ctx *ctx, const char *sql, const char *a, const char *b)
{
	sqlite3_stmt *s = NULL;

	if (sqlite3_prepare_v2(ctx->st->db, sql, -1, &s, NULL) != SQLITE_OK)
		return NULL;
	if (sqlite3_bind_parameter_count(s) >= 1)
		sqlite3_bind_text(s, 1, a, -1, SQLITE_TRANSIENT);
	if (sqlite3_bind_parameter_count(s) >= 2)
		sqlite3_bind_text(s, 2, b, -1, SQLITE_TRANSIENT);
	return s;
}

/* The first column of the first row as a new string: 0, 1 (no row or
 * NULL), -1 error. */
static int
text2(struct tlbot_ctx *ctx, char **out, const char *sql, const char *a, const char *b)
{
	sqlite3_stmt *s = prep2(ctx, sql, a, b);
	int rc;

	*out = NULL;
	if (s == NULL)
		return -1;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW && sqlite3_column_text(s, 0))
		*out = strdup((const char *)sqlite3_column_text(s, 0));
	sqlite3_finalize(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return -1;
	return *out ? 0 : 1;
}

const char *
tlbot_ctx_keep(struct tlbot_ctx *ctx, const char *s)
{
	char *c;

	if (s == NULL || ctx->nkept == TLBOT_CTX_MAX_KEPT)
		return NULL;
	c = strdup(s);
	if (c == NULL)
		return NULL;
	ctx->kept[ctx->nkept++] = c;
	return c;
}

int
tlbot_ctx_member(struct tlbot_ctx *ctx, const char *user_id)
{
	char *v = NULL;
	int rc;

	if (ctx->room_id == NULL || user_id == NULL)
		return 0;
	rc = text2(ctx, &v,
		   "SELECT 1 FROM room_state WHERE room_id = ? AND type = 'm.room.member'"
		   " AND state_key = ? AND json_extract(content, '$.membership')"
		   " IN ('join', 'invite')",
		   ctx->room_id, user_id);
	free(v);
	return rc == 0;
}

size_t
tlbot_ctx_find_member(struct tlbot_ctx *ctx, const char *word, const char **id)
{
	sqlite3_stmt *s;
	size_t n = 0, wl;
	char *hit = NULL;

	*id = NULL;
	if (ctx->room_id == NULL || word == NULL)
		return 0;
	if (*word == '@')
		word++;
	wl = strlen(word);
	if (wl == 0)
		return 0;
	s = prep2(ctx,
		  "SELECT state_key, json_extract(content, '$.displayname') FROM room_state"
		  " WHERE room_id = ? AND type = 'm.room.member' AND state_key <> ?"
		  " AND json_extract(content, '$.membership') IN ('join', 'invite')",
		  ctx->room_id, ctx->bot_user ? ctx->bot_user : "");
	if (s == NULL)
		return 0;
	while (sqlite3_step(s) == SQLITE_ROW) {
		const char *uid = (const char *)sqlite3_column_text(s, 0);
		const char *dn = (const char *)sqlite3_column_text(s, 1);
		const char *colon = uid ? strchr(uid, ':') : NULL;
		int match = 0;

		if (uid == NULL || colon == NULL)
			continue;
		if ((size_t)(colon - uid - 1) == wl && strncasecmp(uid + 1, word, wl) == 0)
			match = 1;
		else if (dn && strcasecmp(dn, word) == 0)
			match = 1;
		if (!match)
			continue;
		if (hit == NULL || strcmp(hit, uid) != 0)
			n++;
		free(hit);
		hit = strdup(uid);
	}
	sqlite3_finalize(s);
	if (n == 1)
		*id = tlbot_ctx_keep(ctx, hit);
	free(hit);
	return *id || n != 1 ? n : 0;
}

int
tlbot_ctx_profile(struct tlbot_ctx *ctx, const char *user_id)
{
	char *v = NULL;
	int rc = text2(ctx, &v, "SELECT found FROM user_profiles WHERE user_id = ?", user_id, NULL);
	int found = v && strcmp(v, "0") != 0;

	free(v);
	if (rc != 0)
		return -1;
	return found;
}

int
tlbot_ctx_lookup_user(struct tlbot_ctx *ctx, const char *user_id)
{
	size_t i;

	for (i = 0; i < ctx->nlookups; i++)
		if (strcmp(ctx->lookups[i], user_id) == 0)
			return 0;
	if (ctx->nlookups == TLBOT_CTX_MAX_LOOKUPS)
		return -1;
	ctx->lookups[ctx->nlookups] = strdup(user_id);
	if (ctx->lookups[ctx->nlookups] == NULL)
		return -1;
	ctx->nlookups++;
	return 0;
}

int
tlbot_ctx_rerun(const struct tlbot_ctx *ctx)
{
	return ctx->rerun;
}

const char *
tlbot_ctx_display_name(struct tlbot_ctx *ctx, const char *user_id)
{
	char *dn = NULL;
	const char *kept;

	if (user_id == NULL)
		return NULL;
	/* this room's member event first, then any room's, then the profile */
	if (text2(ctx, &dn,
		  "SELECT json_extract(content, '$.displayname') FROM room_state"
		  " WHERE type = 'm.room.member' AND state_key = ?"
		  " AND json_extract(content, '$.displayname') IS NOT NULL"
		  " ORDER BY room_id = ? DESC LIMIT 1",
		  user_id, ctx->room_id ? ctx->room_id : "") != 0 &&
	    text2(ctx, &dn, "SELECT displayname FROM user_profiles WHERE user_id = ? AND found = 1",
		  user_id, NULL) != 0)
		return NULL;
	kept = *dn ? tlbot_ctx_keep(ctx, dn) : NULL;
	free(dn);
	return kept;
}

int
tlbot_ctx_namer(void *arg, const char *user_id, char *out, size_t outlen)
{
	struct tlbot_ctx *ctx = arg;
	const char *colon = user_id ? strchr(user_id, ':') : NULL;
	char *dn = NULL;
	size_t i, n, chars = 0;

	if (ctx == NULL || ctx->st == NULL || colon == NULL || user_id[0] != '@')
		return -1;
	if (text2(ctx, &dn,
		  "SELECT json_extract(content, '$.displayname') FROM room_state"
		  " WHERE type = 'm.room.member' AND state_key = ?"
		  " AND json_extract(content, '$.displayname') IS NOT NULL"
		  " ORDER BY room_id = ? DESC LIMIT 1",
		  user_id, ctx->room_id ? ctx->room_id : "") != 0 &&
	    text2(ctx, &dn, "SELECT displayname FROM user_profiles WHERE user_id = ? AND found = 1",
		  user_id, NULL) != 0)
		return -1;
	n = strlen(dn);
	/* only a name of their own: the localpart alone says less than the id;
	 * nothing that could pass for another id or break a line */
	if (n == 0 || ((size_t)(colon - user_id - 1) == n && strncasecmp(user_id + 1, dn, n) == 0) ||
	    dn[0] == '@' || n >= outlen) {
		free(dn);
		return -1;
	}
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)dn[i];

		if (c < 0x20 || c == 0x7f) {
			free(dn);
			return -1;
		}
		if ((c & 0xc0) != 0x80)
			chars++;
	}
	if (chars > 64) {
		free(dn);
		return -1;
	}
	memcpy(out, dn, n + 1);
	free(dn);
	return 0;
}
