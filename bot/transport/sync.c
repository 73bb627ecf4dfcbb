/* The /sync long-poll transport. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tlbot/clock.h"
#include "tlbot/daemon.h"
#include "tlbot/log.h"
#include "tlbot/matrix.h"
#include "tlbot/metrics.h"

#define GAP_PAGE 100
#define TRIM_AFTER_BYTES (1024 * 1024)
#define GAP_MAX_PAGES 20

const char *
tlbot_sync_filter_json(int timeline_limit, char *buf, size_t buflen)
{
	snprintf(buf, buflen,
		 "{\"presence\":{\"types\":[]},"
		 "\"account_data\":{\"types\":[\"m.direct\"]},"
		 "\"room\":{"
		 "\"timeline\":{\"limit\":%d,\"types\":[\"m.room.message\",\"m.room.redaction\","
		 "\"m.room.member\",\"m.room.power_levels\",\"m.room.create\",\"m.room.name\","
		 "\"org.matrix.msc4391.command_description\",\"m.bot.command_description\","
		 "\"m.room.encrypted\",\"m.room.encryption\",\"m.room.history_visibility\"]},"
		 "\"state\":{\"lazy_load_members\":true,\"types\":[\"m.room.member\","
		 "\"m.room.power_levels\",\"m.room.create\",\"m.room.name\","
		 "\"org.matrix.msc4391.command_description\",\"m.bot.command_description\","
		 "\"m.room.encryption\",\"m.room.history_visibility\"]},"
		 "\"ephemeral\":{\"types\":[]},\"account_data\":{\"types\":[]}}}",
		 timeline_limit);
	return buf;
}

/* Fetch the events a limited timeline skipped: page back from prev_batch
 * until a handled event or the bot's join; return them oldest first. */
static json_t *
fill_gap(void *arg, const char *room_id, const char *prev_batch)
{
	struct tlbot_daemon *d = arg;
	struct tlbot_http_resp r;
	json_t *acc = json_array(), *out = NULL;
	char *from = strdup(prev_batch);
	int page, done = 0;
	size_t i;

	tlbot_http_resp_init(&r);
	for (page = 0; page < GAP_MAX_PAGES && !done && from; page++) {
		const json_t *chunk;
		const char *end;
		enum tlbot_err e = tlbot_mx_messages(&d->http, room_id, from, "b", GAP_PAGE, NULL, &r);

		if (e != TLBOT_OK) {
			log_warnx("room %s: /messages for a gap failed: %s %s", room_id, r.errcode, r.error);
			goto out;
		}
		chunk = json_object_get(r.json, "chunk");
		for (i = 0; i < json_array_size(chunk); i++) {
			const json_t *ev = json_array_get(chunk, i);
			const char *id = json_string_value(json_object_get(ev, "event_id"));
			const char *type = json_string_value(json_object_get(ev, "type"));
			const char *skey = json_string_value(json_object_get(ev, "state_key"));

			json_array_append(acc, (json_t *)ev);
			if ((id && tlbot_store_event_seen(&d->st, id) == 1) ||
			    (type && skey && strcmp(type, "m.room.member") == 0 &&
			     strcmp(skey, d->user_id) == 0)) {
				done = 1;
				break;
			}
		}
		end = json_string_value(json_object_get(r.json, "end"));
		free(from);
		from = end && json_array_size(chunk) > 0 ? strdup(end) : NULL;
	}
	if (!done && from)
		log_warnx("room %s: gap longer than %d events: the oldest are not answered", room_id,
			  GAP_PAGE * GAP_MAX_PAGES);
	out = json_array();
	for (i = json_array_size(acc); out && i > 0; i--)
		json_array_append(out, json_array_get(acc, i - 1));
out:
	free(from);
	json_decref(acc);
	tlbot_http_resp_release(&r);
	return out;
}

/* ---- the first sync, a chunk of rooms at a time ----
 *
 * A first sync holds every joined room's state: one jansson tree of it is
 * ~9x the body (5,000 rooms: 95 MB peak). The body is read undecoded and
 * split at the text level: everything but rooms.join is decoded and
 * applied first, then the rooms in chunks of FIRST_CHUNK, each a batch of
 * its own (same next_batch, router_apply with since = NULL). A crash in
 * between leaves kv first_sync_partial set: the next start syncs afresh. */

#define FIRST_CHUNK 200
#define FIRST_SYNC_TIMEOUT_MS 120000L

static const char *
skip_ws(const char *p, const char *e)
{
	while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

/* End of the string starting at p ('"'), or NULL. */
static const char *
skip_string(const char *p, const char *e)
{
	for (p++; p < e; p++) {
		if (*p == '\\')
			p++;
		else if (*p == '"')
			return p + 1;
	}
	return NULL;
}

/* End of the JSON value at p, or NULL when the text is broken. */
static const char *
skip_value(const char *p, const char *e)
{
	int depth = 0;

	p = skip_ws(p, e);
	if (p >= e)
		return NULL;
	if (*p == '"')
		return skip_string(p, e);
	if (*p != '{' && *p != '[') {
		while (p < e && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\n' &&
		       *p != '\r' && *p != '\t')
			p++;
		return p;
	}
	for (; p < e; p++) {
		if (*p == '"') {
			p = skip_string(p, e);
			if (p == NULL)
				return NULL;
			p--;
		} else if (*p == '{' || *p == '[') {
			depth++;
		} else if (*p == '}' || *p == ']') {
			if (--depth == 0)
				return p + 1;
		}
	}
	return NULL;
}

/* Call fn for each member of the object at p: the key (with its quotes)
 * and the value's range. Returns 0, -1 (broken text), or what fn returned. */
static int
obj_each(const char *p, const char *e,
	 int (*fn)(const char *k, const char *ke, const char *v, const char *ve, void *arg),
	 void *arg)
{
	p = skip_ws(p, e);
	if (p >= e || *p != '{')
		return -1;
	p = skip_ws(p + 1, e);
	if (p < e && *p == '}')
		return 0;
	while (p < e) {
		const char *k = p, *ke, *v, *ve;
		int rc;

		if (*p != '"' || (ke = skip_string(p, e)) == NULL)
			return -1;
		p = skip_ws(ke, e);
		if (p >= e || *p != ':')
			return -1;
		v = skip_ws(p + 1, e);
		ve = skip_value(v, e);
		if (ve == NULL)
			return -1;
		rc = fn(k, ke, v, ve, arg);
		if (rc != 0)
			return rc;
		p = skip_ws(ve, e);
		if (p < e && *p == ',')
			p = skip_ws(p + 1, e);
		else if (p < e && *p == '}')
			return 0;
		else
			return -1;
	}
	return -1;
}

struct first_split {
	const char *join, *join_end; /* rooms.join's value */
	const char *rooms, *rooms_end;
};

static int
find_join(const char *k, const char *ke, const char *v, const char *ve, void *arg)
{
	struct first_split *fs = arg;

	if (ke - k == 6 && memcmp(k, "\"join\"", 6) == 0) {
		fs->join = v;
		fs->join_end = ve;
	}
	return 0;
}

static int
find_rooms(const char *k, const char *ke, const char *v, const char *ve, void *arg)
{
	struct first_split *fs = arg;

	if (ke - k == 7 && memcmp(k, "\"rooms\"", 7) == 0) {
		fs->rooms = v;
		fs->rooms_end = ve;
		return obj_each(v, ve, find_join, fs) < 0 ? -1 : 0;
	}
	return 0;
}

struct first_chunk {
	struct tlbot_daemon *d;
	const char *next;
	json_t *rooms; /* the chunk: room id -> room */
	int failed;
};

static int
apply_chunk(struct first_chunk *fc)
{
	json_t *batch = json_pack("{s:s, s:{s:O}}", "next_batch", fc->next, "rooms", "join", fc->rooms);
	int rc = batch ? tlbot_router_apply(&fc->d->router, batch, NULL) : -1;

	json_decref(batch);
	json_object_clear(fc->rooms);
	return rc;
}

static int
add_room(const char *k, const char *ke, const char *v, const char *ve, void *arg)
{
	struct first_chunk *fc = arg;
	json_error_t jerr;
	json_t *key = json_loadb(k, (size_t)(ke - k), JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
	json_t *room = tlbot_json_decode(v, (size_t)(ve - v), &jerr);
	int rc = 0;

	if (json_is_string(key) && json_is_object(room))
		json_object_set(fc->rooms, json_string_value(key), room);
	else
		log_warnx("sync: a room of the first sync could not be read (%s): skipped", jerr.text);
	json_decref(key);
	json_decref(room);
	if (json_object_size(fc->rooms) >= FIRST_CHUNK)
		rc = apply_chunk(fc);
	return rc;
}

static int first_sync_apply(struct tlbot_daemon *d, const char *body, size_t len, char **next);

static int
find_batch_keys(const char *k, const char *ke, const char *v, const char *ve, void *arg)
{
	int *seen = arg;

	(void)v;
	(void)ve;
	if (ke - k == 12 && memcmp(k, "\"next_batch\"", 12) == 0)
		*seen |= 1;
	else if ((ke - k == 4 && memcmp(k, "\"id\"", 4) == 0) ||
		 (ke - k == 8 && memcmp(k, "\"method\"", 8) == 0))
		*seen |= 2;
	return 0;
}

int
tlbot_sync_first_apply(struct tlbot_daemon *d, const char *body, size_t len, char **next)
{
	int seen = 0;

	*next = NULL;
	if (obj_each(body, body + len, find_batch_keys, &seen) != 0 || seen != 1)
		return 1;
	return first_sync_apply(d, body, len, next);
}

char *
tlbot_sync_start_position(struct tlbot_daemon *d)
{
	char *since = NULL, *partial = NULL;

	if (tlbot_store_kv_get(&d->st, "next_batch", &since) != 0)
		since = NULL;
	if (tlbot_store_kv_get(&d->st, "first_sync_partial", &partial) == 0) {
		/* a first sync was cut short: do it again, whole */
		log_info("sync: the first sync was interrupted; starting it again");
		tlbot_store_kv_del(&d->st, "next_batch");
		free(since);
		since = NULL;
	}
	free(partial);
	return since;
}

/* Apply the undecoded first sync body. Returns 0 with *next set (new
 * string), or -1 (nothing kept beyond whole chunks; retried afresh). */
static int
first_sync_apply(struct tlbot_daemon *d, const char *body, size_t len, char **next)
{
	const char *e = body + len;
	struct first_split fs = { 0 };
	struct first_chunk fc = { 0 };
	struct tlbot_buf rest;
	json_error_t jerr;
	json_t *head = NULL;
	const char *nb;
	int rc = -1, rooms = 0;

	*next = NULL;
	if (obj_each(body, e, find_rooms, &fs) != 0) {
		log_warnx("sync: the first sync answer is not a JSON object");
		return -1;
	}
	/* everything but rooms.join: next_batch, account data, invites... */
	tlbot_buf_init(&rest, len + 16);
	if (fs.join) {
		if (tlbot_buf_add(&rest, body, (size_t)(fs.join - body)) != 0 ||
		    tlbot_buf_adds(&rest, "{}") != 0 ||
		    tlbot_buf_add(&rest, fs.join_end, (size_t)(e - fs.join_end)) != 0)
			goto out;
	} else if (tlbot_buf_add(&rest, body, len) != 0) {
		goto out;
	}
	head = tlbot_json_decode(tlbot_buf_str(&rest), rest.len, &jerr);
	tlbot_buf_release(&rest);
	nb = json_string_value(json_object_get(head, "next_batch"));
	if (nb == NULL) {
		log_warnx("sync: first sync answer without next_batch");
		goto out;
	}
	if (tlbot_store_kv_set(&d->st, "first_sync_partial", nb) != 0 ||
	    tlbot_router_apply(&d->router, head, NULL) != 0)
		goto out;
	fc.d = d;
	fc.next = nb;
	fc.rooms = json_object();
	if (fc.rooms == NULL)
		goto out;
	if (fs.join) {
		rooms = obj_each(fs.join, fs.join_end, add_room, &fc);
		if (rooms == 0 && json_object_size(fc.rooms) > 0)
			rooms = apply_chunk(&fc);
		if (rooms != 0)
			goto out;
	}
	if (tlbot_store_kv_del(&d->st, "first_sync_partial") != 0)
		goto out;
	*next = strdup(nb);
	rc = *next ? 0 : -1;
out:
	tlbot_buf_release(&rest);
	json_decref(fc.rooms);
	json_decref(head);
	return rc;
}

static enum tlbot_err
first_sync_request(struct tlbot_daemon *d, const char *filter, struct tlbot_http_resp *r)
{
	struct tlbot_buf p;
	char *f = tlbot_http_escape(filter);
	enum tlbot_err e = TLBOT_ERR_NOMEM;

	tlbot_buf_init(&p, 65536);
	/* a timeout that differs from the last start's: not from Synapse's
	 * response cache (see tlbot_mx_first_sync_timeout_ms) */
	if (f && tlbot_buf_printf(&p, "/_matrix/client/v3/sync?timeout=%ld&filter=%s",
				  tlbot_mx_first_sync_timeout_ms(), f) == 0) {
		d->http.raw = 1;
		e = tlbot_http_request(&d->http, "GET", tlbot_buf_str(&p), NULL, 0, NULL,
				       FIRST_SYNC_TIMEOUT_MS, r);
		d->http.raw = 0;
	}
	free(f);
	tlbot_buf_release(&p);
	return e;
}

/* Create the filter once (stored), falling back to inline JSON. */
static void
setup_filter(struct tlbot_daemon *d)
{
	char json[1024], *id = NULL, *stored_json = NULL;
	struct tlbot_http_resp r;

	tlbot_sync_filter_json(d->cfg->timeline_limit, json, sizeof(json));
	if (tlbot_store_kv_get(&d->st, "filter_json", &stored_json) == 0 &&
	    strcmp(stored_json, json) == 0 && tlbot_store_kv_get(&d->st, "filter_id", &id) == 0) {
		d->filter = id;
		free(stored_json);
		return;
	}
	free(stored_json);
	free(id);
	id = NULL;
	tlbot_http_resp_init(&r);
	if (tlbot_mx_create_filter(&d->http, d->user_id, json, &id, &r) == TLBOT_OK) {
		tlbot_store_kv_set(&d->st, "filter_id", id);
		tlbot_store_kv_set(&d->st, "filter_json", json);
		d->filter = id;
	} else {
		log_warnx("creating the sync filter failed (%s %s); sending it inline", r.errcode, r.error);
		d->filter = strdup(json);
	}
	tlbot_http_resp_release(&r);
}

int
tlbot_sync_refused(struct tlbot_daemon *d, const char *who, int *refused, int from_position,
		   const char *errcode, const char *error, long status)
{
	if ((*refused)++ > 0 && from_position) {
		/* refused again with a new filter: the position itself (a since
		 * the server no longer knows, e.g. after its database was
		 * restored). Start afresh: what came meanwhile is marked
		 * handled, as at a first start. */
		log_error("%s: %s %s (HTTP %ld) again with a new filter: the homeserver does not know "
			  "our position; starting afresh (messages sent meanwhile are not answered)",
			  who, errcode, error, status);
		tlbot_store_kv_del(&d->st, "next_batch");
		*refused = 0;
		return 1;
	}
	/* e.g. a filter or position the server no longer knows */
	log_error("%s: %s %s (HTTP %ld); retrying with a new filter", who, errcode, error, status);
	free(d->filter);
	d->filter = NULL;
	tlbot_store_kv_del(&d->st, "filter_id");
	tlbot_store_kv_del(&d->st, "filter_json");
	setup_filter(d);
	return 0;
}

void
tlbot_sync_prepare(struct tlbot_daemon *d)
{
	if (d->filter)
		return; /* done: the WebSocket transport prepared it, or an earlier run */
	tlbot_router_init(&d->router, d->cfg, d->user_id, &d->st);
	d->router.crypto = d->crypto;
	d->router.http = &d->http;
	d->router.fill_gap = fill_gap;
	d->router.fill_arg = d;
	d->router.describe = 1; /* MSC4391 descriptions, once per start */
	setup_filter(d);
}

/* A /sync request failed with e (answer in r): stop on a rejected token,
 * start afresh from a refused position (*since freed and NULL), else wait
 * (a rate limit's time, or backoff). Returns 0 to go on, -1 to stop. */
static int
sync_failed(struct tlbot_daemon *d, enum tlbot_err e, const struct tlbot_http_resp *r,
	    char **since, int *attempt, int *refused)
{
	long wait;

	if (e == TLBOT_ERR_HTTP && strcmp(r->errcode, "M_UNKNOWN_TOKEN") == 0) {
		log_error("sync: the homeserver rejected the access token (M_UNKNOWN_TOKEN): "
			  "it was logged out or revoked; restart tlbot to log in again, or "
			  "give it a new access token");
		tlbot_daemon_fail(d, 2);
		return -1;
	}
	if (!tlbot_http_retryable(e, r) &&
	    tlbot_sync_refused(d, "sync", refused, *since != NULL, r->errcode, r->error,
			       r->status) == 1) {
		free(*since);
		*since = NULL;
		return 0;
	}
	/* a rate limit says how long to wait; other failures back off */
	if (r->retry_after_ms >= 0)
		wait = r->retry_after_ms;
	else
		wait = tlbot_backoff_ms((*attempt)++, 500, 60000);
	log_warnx("sync: %s: %s%s%s; retrying in %ld ms", tlbot_strerror(e), r->errcode,
		  r->errcode[0] ? " " : "", r->error, wait);
	tlbot_daemon_sleep(d, wait);
	return 0;
}

/* The first sync's answer (undecoded, in r): apply it; on success *since
 * is its next_batch and r is emptied, else wait before the retry. */
static void
first_sync_done(struct tlbot_daemon *d, struct tlbot_http_resp *r, char **since, int *attempt,
		int *apply_failures)
{
	char *first_next = NULL;
	size_t body_len = r->body.len;

	d->router.isolate = *apply_failures >= 3;
	if (first_sync_apply(d, r->body.data ? r->body.data : "", r->body.len, &first_next) != 0) {
		long wait = tlbot_backoff_ms((*attempt)++, 500, 60000);

		(*apply_failures)++;
		log_error("sync: could not apply the first sync (see above); retrying in %ld ms",
			  wait);
		tlbot_daemon_sleep(d, wait);
		return;
	}
	log_debug("sync: first sync (%zu bytes) -> %s", body_len, first_next);
	*apply_failures = 0;
	*attempt = 0;
	*since = first_next;
	__atomic_add_fetch(&d->batches_applied, 1, __ATOMIC_RELEASE);
	tlbot_daemon_wake(d);
	tlbot_http_resp_release(r);
	tlbot_http_resp_init(r);
	tlbot_daemon_trim();
}

int
tlbot_sync_run(struct tlbot_daemon *d)
{
	struct tlbot_http_resp r;
	char *since = NULL;
	int attempt = 0, apply_failures = 0, refused = 0;
	char first_filter[1024];

	tlbot_sync_prepare(d);
	tlbot_metrics_transport("sync");
	since = tlbot_sync_start_position(d);
	log_info("sync: starting %s", since ? "from the stored position" :
		 "fresh: history before now is marked handled, not answered");
	/* The first sync of a fresh start answers nothing (history is marked
	 * handled), so it asks for one event per room, not timeline_limit: that
	 * event is the boundary a later gap fill stops at. In a big account
	 * the whole first sync is one JSON tree (5,000 rooms: 95 MB peak with
	 * the full timelines). */
	tlbot_sync_filter_json(1, first_filter, sizeof(first_filter));
	tlbot_http_resp_init(&r);
	/* sync_until_ms: the auto transport re-probes the WebSocket (ws.c) */
	while (!*d->stop && !(d->sync_until_ms && tlbot_clock_mono_ms() >= d->sync_until_ms)) {
		enum tlbot_err e = since ? tlbot_mx_sync(&d->http, since, d->filter,
							 d->cfg->sync_timeout_ms, &r)
					 : first_sync_request(d, first_filter, &r);
		size_t body_len = r.body.len;

		if (e == TLBOT_ERR_ABORT || *d->stop)
			break;
		if (e != TLBOT_OK) {
			if (sync_failed(d, e, &r, &since, &attempt, &refused) != 0)
				break;
			continue;
		}
		if (since == NULL) {
			first_sync_done(d, &r, &since, &attempt, &apply_failures);
			continue;
		}
		/* the body is decoded: free it before the tree is applied, so the
		 * two are not in the heap together */
		if (body_len > TRIM_AFTER_BYTES) {
			tlbot_buf_release(&r.body);
			tlbot_buf_init(&r.body, 64u * 1024 * 1024);
		}
		if (tlbot_daemon_apply(d, &apply_failures, "sync", r.json, &since) != 0) {
			long wait = tlbot_backoff_ms(attempt++, 500, 60000);

			log_warnx("sync: retrying the batch in %ld ms", wait);
			tlbot_daemon_sleep(d, wait);
			continue;
		}
		refused = 0;
		if (attempt > 0)
			log_info("sync: recovered after %d failed attempts", attempt);
		attempt = 0;
		/* A large batch (a first sync in thousands of rooms) leaves its
		 * body and its JSON tree (~9x the body) in the heap: free them
		 * now and hand the pages back, or the idle daemon keeps its peak
		 * (bench/run: 97 MB idle after a first sync in 5,000 rooms). */
		if (body_len > TRIM_AFTER_BYTES) {
			tlbot_http_resp_release(&r);
			tlbot_http_resp_init(&r);
			tlbot_daemon_trim();
		}
	}
	tlbot_http_resp_release(&r);
	free(since);
	return 0;
}
