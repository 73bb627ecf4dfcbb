/* The worker thread: sends the outbox and fires scheduled jobs. It has its
 * own store connection and HTTP handles, so sending never waits behind the
 * receive side's long-poll.
 *
 * Sending: up to send_concurrency rows are in flight at once (curl multi,
 * or the WebSocket's request queue), at most send_per_room of them to one
 * room or DM partner while other rooms have rows waiting (a slot nobody
 * else wants goes to a room that has rows). Order is kept where people see it: a row waits while
 * an earlier pending row has the same cause (its txnId without the last
 * ".<n>": one command's event or one job) and the same destination, so one
 * command's or job's messages reach each room in their order; a join or
 * leave row waits for every earlier row of its room and holds back every
 * later one (so do a "members" fetch and a "profile" lookup). txnIds are the stored ones, so a resend after a crash or a lost
 * answer is de-duplicated by the homeserver as before. A 429 pauses only
 * that destination for retry_after_ms; a network failure or 5xx pauses new
 * requests everywhere with backoff (the homeserver is in trouble), then
 * one request at a time until one is answered. Rows not caused by an event
 * (scheduled jobs) use at most three quarters of the slots. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tlbot/clock.h"
#include "tlbot/crypto.h"
#include "tlbot/daemon.h"
#include "tlbot/log.h"
#include "tlbot/matrix.h"
#include "tlbot/metrics.h"
#include "tlbot/ws.h"

#define SEND_BACKOFF_BASE_MS 250
#define SEND_BACKOFF_CAP_MS 60000
#define FLIGHT_MAX 64    /* the cap of send_concurrency */
#define PEND_MAX 4096    /* pending rows known at once; the rest load as these go */
#define LOAD_BATCH 512   /* rows read from the store per query */
#define SET_SLOTS 8192   /* hash sets of one fill (power of 2, >= 2 * PEND_MAX) */
#define PAUSE_MAX 64     /* destinations paused by a 429 at once */
#define TXN_KEY "org.tlbot.txn" /* the row's txnId, in the content of what it sends */
#define ROW_ERR_ALONE 3     /* a row's server errors in a row after which it backs off alone */
#define ROW_ERR_GIVE_UP 5   /* and the fewest after which it may be given up */

/* A pending outbox row the worker knows of (id order). */
struct pend {
	struct pend *next;
	int64_t id;
	uint64_t cause;     /* hash of the txnId up to its last '.' */
	uint64_t dest;      /* hash of the room, or of the DM partner */
	int barrier;        /* join/leave/profile: ordered with every row of dest */
	int interactive;    /* caused by an event (a command someone waits on) */
	int flying;         /* in flight */
	int64_t not_before; /* monotonic ms: retry not before */
	int row_errs;       /* server errors answered to this row (see row_error) */
	int64_t first_err_ms; /* monotonic ms of the first of them */
};

/* One request in flight. */
struct flight {
	struct pend *p; /* NULL: the slot is free */
	struct tlbot_outbox_row row;
	struct tlbot_http_xfer x;  /* over REST (x.easy set) */
	struct tlbot_ws_req *wq;   /* or over the WebSocket */
	int64_t started_ms;
};

struct pause {
	uint64_t dest;
	int64_t until;
};

/* Hash sets of one fill, cleared by bumping gen. */
struct hset {
	uint64_t key[SET_SLOTS];
	unsigned gen[SET_SLOTS];
};

struct worker {
	struct tlbot_daemon *d;
	struct tlbot_store st;
	struct tlbot_http http;      /* blocking requests: DM rooms, uploads */
	struct tlbot_http_multi multi;
	struct tlbot_router router;  /* for jobs */
	int attempt;                 /* consecutive retryable failures */
	int64_t global_until;        /* network/5xx trouble: nothing new before */
	int64_t global_set_ms;       /* when that pause began */
	int probing;                 /* after it: one request at a time until one is answered */
	struct pend *head, **tail;
	int npend;
	int ninteractive;            /* of which caused by an event */
	int64_t max_loaded;          /* highest row id loaded */
	int more;                    /* PEND_MAX reached: load again as rows go */
	int reload;                  /* this thread committed rows: load them */
	struct flight fl[FLIGHT_MAX];
	int nflight, cap, per_room;
	int64_t give_up_ms;          /* send_give_up: a row's server errors for this long */
	struct pause pauses[PAUSE_MAX];
	unsigned gen;
	unsigned finished;           /* rows finished (any outcome), to see progress */
	struct hset seen, dests, barriers;
};

/* Record the DM room in m.direct so clients show it as a DM. Best effort. */
static void
mark_direct(struct worker *w, const char *user_id, const char *room_id)
{
	struct tlbot_http_resp r;
	json_t *content = NULL, *list;
	char *text = NULL;

	tlbot_http_resp_init(&r);
	if (tlbot_mx_account_data_get(&w->http, w->d->user_id, "m.direct", &r) == TLBOT_OK &&
	    json_is_object(r.json))
		content = json_deep_copy(r.json);
	if (content == NULL)
		content = json_object();
	list = json_object_get(content, user_id);
	if (!json_is_array(list)) {
		list = json_array();
		json_object_set_new(content, user_id, list);
	}
	json_array_append_new(list, json_string(room_id));
	text = json_dumps(content, JSON_COMPACT);
	if (text == NULL || tlbot_mx_account_data_put(&w->http, w->d->user_id, "m.direct", text, &r) != TLBOT_OK)
		log_warnx("could not record DM room %s with %s in m.direct: %s", room_id, user_id, r.error);
	free(text);
	json_decref(content);
	tlbot_http_resp_release(&r);
}

/* Resolve a "dm" row: find or create the DM room. Returns TLBOT_OK when
 * the row now targets a room. */
static enum tlbot_err
resolve_dm(struct worker *w, const struct tlbot_outbox_row *row, struct tlbot_http_resp *r)
{
	char *room = NULL;
	enum tlbot_err e;

	if (tlbot_store_dm_get(&w->st, row->user_id, &room) < 0)
		return TLBOT_ERR_DB;
	if (room == NULL) {
		/* createRoom is not idempotent: a kill -9 between its answer and
		 * the commit below left a room nobody recorded. The receive side
		 * learns it from its first batch after the restart (the bot's own
		 * m.room.create and the invite), so wait for that batch, then
		 * reuse such a room rather than make a second one. */
		int waited = 0;

		while (__atomic_load_n(&w->d->batches_applied, __ATOMIC_ACQUIRE) == 0 &&
		       waited < 10000 && !*w->d->stop) {
			tlbot_daemon_sleep(w->d, 100);
			waited += 100;
		}
		if (tlbot_store_dm_orphan(&w->st, w->d->user_id, row->user_id, &room) < 0)
			return TLBOT_ERR_DB;
		if (room != NULL) {
			if (tlbot_store_dm_set(&w->st, row->user_id, room) != 0) {
				free(room);
				return TLBOT_ERR_DB;
			}
			log_info("DM room %s with %s was created before a restart: using it", room,
				 row->user_id);
			mark_direct(w, row->user_id, room);
		}
	}
	if (room == NULL) {
		e = tlbot_mx_create_dm(&w->http, row->user_id, w->d->crypto != NULL, &room, r);
		if (e != TLBOT_OK)
			return e;
		/* commit the room at once so a retry reuses it */
		if (tlbot_store_dm_set(&w->st, row->user_id, room) != 0) {
			free(room);
			return TLBOT_ERR_DB;
		}
		/* encrypted from the start: know it before the sync tells us, so
		 * the first message already goes out encrypted */
		if (w->d->crypto &&
		    tlbot_store_state_put(&w->st, room, "m.room.encryption", "", w->d->user_id,
					  "{\"algorithm\":\"m.megolm.v1.aes-sha2\"}") != 0) {
			free(room);
			return TLBOT_ERR_DB;
		}
		log_info("created DM room %s with %s", room, row->user_id);
		mark_direct(w, row->user_id, room);
	}
	if (tlbot_store_outbox_resolve_dm(&w->st, row->id, room) != 0) {
		free(room);
		return TLBOT_ERR_DB;
	}
	free(room);
	return TLBOT_OK;
}

/* A room just joined: its members as the homeserver has them now, since a
 * lazy-loading /sync lists only members who spoke. Members /sync already
 * told about are kept (newer). */
static enum tlbot_err
store_members(struct worker *w, const struct tlbot_outbox_row *row, struct tlbot_http_resp *r)
{
	const json_t *joined;
	const char *user;
	json_t *info;
	int n = 0;

	joined = json_object_get(r->json, "joined");
	if (!json_is_object(joined))
		return TLBOT_ERR_PARSE;
	if (tlbot_store_begin(&w->st) != 0)
		return TLBOT_ERR_DB;
	json_object_foreach((json_t *)joined, user, info) {
		const char *dn = json_string_value(json_object_get(info, "display_name"));
		json_t *c = json_pack("{s:s}", "membership", "join");
		char *text;

		if (c && dn)
			json_object_set_new(c, "displayname", json_string(dn));
		text = c ? json_dumps(c, JSON_COMPACT) : NULL;
		json_decref(c);
		if (text == NULL || tlbot_store_member_fill(&w->st, row->room_id, user, text) != 0) {
			free(text);
			tlbot_store_rollback(&w->st);
			return TLBOT_ERR_DB;
		}
		free(text);
		n++;
	}
	if (tlbot_store_commit(&w->st) != 0)
		return TLBOT_ERR_DB;
	log_info("room %s: %d joined members from the homeserver", row->room_id, n);
	return TLBOT_OK;
}

/* Does a user the command asked about exist? GET /profile; the answer is
 * stored and, when it was the command's last pending lookup, the command
 * runs again in the same transaction (at most once: see
 * tlbot_router_rerun). */
static enum tlbot_err
lookup_profile(struct worker *w, const struct tlbot_outbox_row *row, struct tlbot_http_resp *r)
{
	enum tlbot_err e = tlbot_mx_profile(&w->http, row->user_id, r);
	const char *dn = NULL;
	int found, others;

	if (e == TLBOT_OK) {
		found = 1;
		dn = json_string_value(json_object_get(r->json, "displayname"));
	} else if (e == TLBOT_ERR_HTTP && (r->status == 404 || r->status == 403)) {
		found = 0; /* no such user (or the server will not say: not confirmed) */
	} else {
		return e;
	}
	log_info("profile of %s: %s", row->user_id, found ? "exists" : "no such user");
	if (tlbot_store_begin(&w->st) != 0)
		return TLBOT_ERR_DB;
	others = tlbot_store_outbox_pending_same(&w->st, row->id, "profile", row->content);
	if (others < 0 || tlbot_store_profile_put(&w->st, row->user_id, found, dn) != 0 ||
	    (others == 0 && row->content && tlbot_router_rerun(&w->router, row->content) != 0)) {
		tlbot_store_rollback(&w->st);
		return TLBOT_ERR_DB;
	}
	if (tlbot_store_commit(&w->st) != 0)
		return TLBOT_ERR_DB;
	return TLBOT_OK;
}

/* Upload the blob and send the m.file event. */
static enum tlbot_err
send_file(struct worker *w, const struct tlbot_outbox_row *row, char **event_id,
	  struct tlbot_http_resp *r)
{
	json_error_t jerr;
	json_t *meta = json_loads(row->content ? row->content : "{}", 0, &jerr), *c = NULL;
	const char *filename = json_string_value(json_object_get(meta, "filename"));
	const char *mimetype = json_string_value(json_object_get(meta, "mimetype"));
	const char *caption = json_string_value(json_object_get(meta, "caption"));
	char *uri = NULL, *text = NULL;
	enum tlbot_err e = TLBOT_ERR_PARSE;

	if (filename == NULL || mimetype == NULL)
		goto out;
	e = tlbot_mx_upload(&w->http, row->blob, (size_t)row->bloblen, mimetype, filename, &uri, r);
	if (e != TLBOT_OK)
		goto out;
	c = json_pack("{s:s, s:s, s:s, s:s, s:{s:s, s:i}, s:{s:[]}}", "msgtype", "m.file",
		      "body", caption && *caption ? caption : filename, "filename", filename,
		      "url", uri, "info", "mimetype", mimetype, "size", row->bloblen,
		      "m.mentions", "user_ids");
	/* the txnId in the content, as start_send does: verify_after_relogin
	 * finds the file whoever the server tells transaction_id to */
	if (c && json_object_set_new(c, TXN_KEY, json_string(row->txn_id)) != 0) {
		json_decref(c);
		c = NULL;
	}
	text = c ? json_dumps(c, JSON_COMPACT) : NULL;
	e = text ? tlbot_mx_send(&w->http, row->room_id, "m.room.message", row->txn_id, text,
				 event_id, r) : TLBOT_ERR_NOMEM;
out:
	free(uri);
	free(text);
	json_decref(c);
	json_decref(meta);
	return e;
}

/* ---- ordering keys ---- */

static uint64_t
hash_str(uint64_t h, const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

static uint64_t
key_of(char tag, const char *s)
{
	char t[1] = { tag };
	uint64_t h = hash_str(0xcbf29ce484222325ULL, t, 1);

	return hash_str(h, s ? s : "", s ? strlen(s) : 0);
}

/* Membership in a set of this fill; adds key. Returns 1 if it was there. A
 * hash collision only holds a row back until the other one is done. */
static int
hset_add(struct hset *hs, unsigned gen, uint64_t key)
{
	size_t i = (size_t)(key ^ (key >> 29)) & (SET_SLOTS - 1);

	while (hs->gen[i] == gen) {
		if (hs->key[i] == key)
			return 1;
		i = (i + 1) & (SET_SLOTS - 1);
	}
	hs->gen[i] = gen;
	hs->key[i] = key;
	return 0;
}

static int
hset_has(const struct hset *hs, unsigned gen, uint64_t key)
{
	size_t i = (size_t)(key ^ (key >> 29)) & (SET_SLOTS - 1);

	while (hs->gen[i] == gen) {
		if (hs->key[i] == key)
			return 1;
		i = (i + 1) & (SET_SLOTS - 1);
	}
	return 0;
}

static int
load_row(void *arg, int64_t id, const char *txn_id, const char *kind, const char *room_id,
	 const char *user_id, const char *dm_user)
{
	struct worker *w = arg;
	struct pend *p = calloc(1, sizeof(*p));
	const char *dot = txn_id ? strrchr(txn_id, '.') : NULL;

	if (p == NULL)
		return -1;
	p->id = id;
	p->cause = hash_str(0xcbf29ce484222325ULL, txn_id ? txn_id : "",
			    dot ? (size_t)(dot - txn_id) : (txn_id ? strlen(txn_id) : 0));
	if ((kind && strcmp(kind, "dm") == 0) || (room_id == NULL && user_id))
		p->dest = key_of('u', user_id); /* a DM (message or file) to be resolved */
	else if (dm_user)
		p->dest = key_of('u', dm_user); /* the same partner as its "dm" rows */
	else
		p->dest = key_of('r', room_id);
	p->interactive = txn_id && strncmp(txn_id, "tlbot.e.", 8) == 0;
	/* a "profile" lookup runs its command again, whose answer must come
	 * after the "checking" reply sent before it */
	/* (a "members" fetch is no barrier: nothing sent waits for it, and at
	 * a first start in 5,000 rooms a reply would wait behind them all) */
	p->barrier = kind && (strcmp(kind, "join") == 0 || strcmp(kind, "leave") == 0 ||
			      strcmp(kind, "profile") == 0);
	*w->tail = p;
	w->tail = &p->next;
	w->npend++;
	w->ninteractive += p->interactive;
	if (id > w->max_loaded)
		w->max_loaded = id;
	return 0;
}

/* Read the pending rows committed since the last look. */
static int
load_pending(struct worker *w)
{
	int n;

	if (w->head == NULL && w->nflight == 0)
		w->max_loaded = 0; /* ids of pruned rows may come back */
	do {
		int room = PEND_MAX - w->npend;

		if (room <= 0) {
			w->more = 1;
			return 0;
		}
		n = tlbot_store_outbox_scan(&w->st, w->max_loaded, room < LOAD_BATCH ? room : LOAD_BATCH,
					    load_row, w);
		if (n < 0)
			return -1;
	} while (n == LOAD_BATCH);
	w->more = 0;
	w->reload = 0;
	return 0;
}

static void
drop_pend(struct worker *w, struct pend *p)
{
	struct pend **pp;

	for (pp = &w->head; *pp; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			if (w->tail == &p->next)
				w->tail = pp;
			break;
		}
	w->npend--;
	w->ninteractive -= p->interactive;
	free(p);
}

static int64_t
paused_until(struct worker *w, uint64_t dest, int64_t now)
{
	int i;

	for (i = 0; i < PAUSE_MAX; i++)
		if (w->pauses[i].until > now && w->pauses[i].dest == dest)
			return w->pauses[i].until;
	return 0;
}

static void
pause_dest(struct worker *w, uint64_t dest, int64_t until)
{
	int i, slot = -1;
	int64_t now = tlbot_clock_mono_ms();

	for (i = 0; i < PAUSE_MAX; i++) {
		if (w->pauses[i].dest == dest || w->pauses[i].until <= now) {
			slot = i;
			if (w->pauses[i].dest == dest)
				break;
		}
	}
	if (slot < 0)
		slot = 0; /* full: the row's own not_before still holds it */
	w->pauses[slot].dest = dest;
	w->pauses[slot].until = until;
}

/* ---- finishing a row ---- */

/* A reply the homeserver refused for good must not vanish: a 413 (too
 * large) becomes a one-line notice in its place, a 400 for its relation
 * (Synapse: a thread root the server does not know) the same answer
 * without the relation. The replacement is a new row (txnId + "-fb", the
 * same cause), tried once. Returns 1 when one was queued. */
static int
queue_fallback(struct worker *w, const struct tlbot_outbox_row *row, const struct tlbot_http_resp *r)
{
	json_error_t jerr;
	json_t *c, *rel, *out = NULL;
	char txn[512], *text = NULL;
	size_t n = row->txn_id ? strlen(row->txn_id) : 0;
	int rc = 0;

	if (strcmp(row->kind, "send") != 0 || row->room_id == NULL || row->event_type == NULL ||
	    strcmp(row->event_type, "m.room.message") != 0 || n == 0 ||
	    (n > 3 && strcmp(row->txn_id + n - 3, "-fb") == 0) || (r->status != 413 && r->status != 400))
		return 0;
	c = json_loads(row->content ? row->content : "{}", 0, &jerr);
	rel = json_object_get(c, "m.relates_to");
	if (r->status == 413) {
		out = json_pack("{s:s, s:s, s:{s:[]}}", "msgtype", "m.notice", "body",
				"This answer was too large for the homeserver to accept; ask for less "
				"(a filter or a page), or for an export file.",
				"m.mentions", "user_ids");
		if (out && json_is_object(rel))
			json_object_set(out, "m.relates_to", rel);
	} else if (json_is_object(rel) && json_object_get(rel, "rel_type")) {
		json_t *irt = json_object_get(rel, "m.in_reply_to");

		out = json_deep_copy(c);
		if (out && json_is_object(irt))
			json_object_set_new(out, "m.relates_to", json_pack("{s:O}", "m.in_reply_to", irt));
		else if (out)
			json_object_del(out, "m.relates_to");
	}
	if (out)
		text = json_dumps(out, JSON_COMPACT);
	if (text && (size_t)snprintf(txn, sizeof(txn), "%s-fb", row->txn_id) < sizeof(txn) &&
	    tlbot_store_outbox_add(&w->st, txn, "send", row->room_id, NULL, row->event_type, text,
				   NULL, 0) == 0) {
		log_warnx("outbox %s: the homeserver refused this answer in %s for good (%s %s, "
			  "HTTP %ld): sending %s instead", row->txn_id, row->room_id, r->errcode,
			  r->error, r->status, r->status == 413 ? "a one-line notice" :
			  "it without its relation");
		w->reload = 1;
		rc = 1;
	}
	free(text);
	json_decref(out);
	json_decref(c);
	return rc;
}

/* Is this failure the homeserver's answer about the row itself: a 5xx
 * other than 502/503/504? Those three (a proxy without its homeserver, a
 * restart, an overload) and failures without an answer (connection
 * refused or dropped, a timeout) are the homeserver's trouble, retried for
 * as long as it lasts; a 429 is a rate limit. */
static int
row_error(enum tlbot_err e, const struct tlbot_http_resp *r)
{
	return e == TLBOT_ERR_HTTP && r->status >= 500 && r->status != 502 && r->status != 503 &&
	       r->status != 504;
}

/* row will not be sent: mark it failed, count it, and let go of what it
 * held (a fallback for a refused answer; a join never made). */
static void
give_up(struct worker *w, struct pend *p, const struct tlbot_outbox_row *row, enum tlbot_err e,
	const struct tlbot_http_resp *r)
{
	tlbot_store_outbox_fail(&w->st, row->id, r->errcode[0] ? r->errcode : r->error, 1);
	tlbot_metrics_send("failed", r->errcode[0] ? r->errcode : r->status > 0 ? "HTTP" : tlbot_strerror(e));
	queue_fallback(w, row, r);
	if (strcmp(row->kind, "join") == 0)
		tlbot_store_room_set(&w->st, row->room_id, "leave", NULL);
	w->attempt = 0;
	w->probing = 0;
	drop_pend(w, p);
}

/* The outcome of one request for row: record it, decide when to retry. */
static void
finish(struct worker *w, struct pend *p, const struct tlbot_outbox_row *row, int64_t started_ms,
       enum tlbot_err e, struct tlbot_http_resp *r, const char *event_id)
{
	int64_t now = tlbot_clock_mono_ms();

	p->flying = 0;
	w->finished++;
	if (row_error(e, r) && p->row_errs++ == 0)
		p->first_err_ms = now;
	if (e == TLBOT_OK) {
		log_debug("outbox %s: %s to %s done%s%s", row->txn_id, row->kind,
			  row->room_id ? row->room_id : row->user_id, event_id ? " as " : "",
			  event_id ? event_id : "");
		w->attempt = 0;
		w->probing = 0;
		tlbot_metrics_send("ok", "");
		if (tlbot_store_outbox_done(&w->st, row->id, event_id) != 0) {
			p->not_before = now + 100; /* retried: the same txnId makes it harmless */
			return;
		}
		drop_pend(w, p);
	} else if (e == TLBOT_ERR_ABORT) {
		return;
	} else if (e == TLBOT_ERR_HTTP && strcmp(r->errcode, "M_UNKNOWN_TOKEN") == 0) {
		log_error("sending: the homeserver rejected the access token (M_UNKNOWN_TOKEN); "
			  "stopping: restart tlbot to log in again or give it a new token");
		tlbot_daemon_fail(w->d, 2);
	} else if (row_error(e, r) && p->row_errs >= ROW_ERR_GIVE_UP &&
		   now - p->first_err_ms >= w->give_up_ms) {
		/* the homeserver keeps answering this row with an error of its
		 * own (others go through): mark it failed, so it no longer holds
		 * back the rows behind it */
		log_error("outbox %s: %s to %s failed for good: the homeserver answered HTTP %ld%s%s "
			  "%d times in %lld s; marked failed",
			  row->txn_id, row->kind, row->room_id ? row->room_id : row->user_id, r->status,
			  r->errcode[0] ? " " : "", r->errcode, p->row_errs,
			  (long long)((now - p->first_err_ms) / 1000));
		give_up(w, p, row, e, r);
	} else if (tlbot_http_retryable(e, r)) {
		long wait;

		if (r->retry_after_ms >= 0 || r->status == 429 ||
		    strcmp(r->errcode, "M_LIMIT_EXCEEDED") == 0) {
			/* a rate limit: pause this destination only, for as long as
			 * it says, without growing the backoff */
			wait = r->retry_after_ms >= 0
				       ? r->retry_after_ms
				       : tlbot_backoff_ms(row->attempts, SEND_BACKOFF_BASE_MS,
							  SEND_BACKOFF_CAP_MS);
			pause_dest(w, p->dest, now + wait);
			w->probing = 0; /* the homeserver answers */
		} else if (p->row_errs >= ROW_ERR_ALONE && row_error(e, r)) {
			/* the same server error for this row again and again: it
			 * backs off alone, so the next row probes the homeserver
			 * and one bad row cannot stall the whole outbox */
			wait = tlbot_backoff_ms(p->row_errs - 1, SEND_BACKOFF_BASE_MS, SEND_BACKOFF_CAP_MS);
		} else if (started_ms >= w->global_set_ms) {
			/* the homeserver is in trouble: back off everything, once
			 * per episode (the requests already in flight when it began
			 * do not grow the backoff again) */
			wait = tlbot_backoff_ms(w->attempt++, SEND_BACKOFF_BASE_MS, SEND_BACKOFF_CAP_MS);
			w->global_until = now + wait;
			w->global_set_ms = now;
			w->probing = 1;
		} else {
			wait = w->global_until > now ? (long)(w->global_until - now) : 0;
		}
		p->not_before = now + wait;
		tlbot_store_outbox_fail(&w->st, row->id, r->error, 0);
		tlbot_metrics_send("retry", r->errcode[0] ? r->errcode : r->status > 0 ? "HTTP" : tlbot_strerror(e));
		if (r->status == 429)
			tlbot_metrics_rate_limited(wait);
		log_warnx("outbox %s: %s to %s failed (%s: %s%s%s, HTTP %ld); retrying in %ld ms",
			  row->txn_id, row->kind, row->room_id ? row->room_id : row->user_id,
			  tlbot_strerror(e), r->errcode, r->errcode[0] ? " " : "", r->error, r->status,
			  wait);
	} else {
		log_error("outbox %s: %s to %s failed for good: %s %s (HTTP %ld); dropped",
			  row->txn_id, row->kind, row->room_id ? row->room_id : row->user_id,
			  r->errcode, r->error, r->status);
		give_up(w, p, row, e, r);
	}
}

static void
slot_free(struct worker *w, struct flight *f)
{
	if (f->x.easy)
		tlbot_http_xfer_release(&w->multi, &f->x);
	if (f->wq)
		tlbot_ws_send_cancel(w->d->ws, f->wq);
	tlbot_store_outbox_row_release(&f->row);
	memset(f, 0, sizeof(*f));
	w->nflight--;
}

/* A request of f finished with e (resp in r). */
static void
slot_done(struct worker *w, struct flight *f, enum tlbot_err e, struct tlbot_http_resp *r,
	  const char *event_id)
{
	finish(w, f->p, &f->row, f->started_ms, e, r, event_id);
	slot_free(w, f);
}

/* Hand f's row to the multi handle over REST. Returns 0, or -1 (finished). */
static int
start_rest(struct worker *w, struct flight *f)
{
	const struct tlbot_outbox_row *row = &f->row;
	char *path;
	const char *body;
	int rc;

	if (strcmp(row->kind, "send") == 0) {
		path = tlbot_mx_send_path(row->room_id, row->event_type, row->txn_id);
		body = row->content ? row->content : "{}";
	} else if (strcmp(row->kind, "members") == 0) {
		path = tlbot_mx_joined_members_path(row->room_id); /* a room just joined */
		body = NULL;
	} else if (strcmp(row->kind, "state") == 0) {
		path = tlbot_mx_state_path(row->room_id, row->event_type,
					   row->user_id ? row->user_id : "");
		body = row->content ? row->content : "{}";
	} else {
		path = tlbot_mx_membership_path(row->room_id, strcmp(row->kind, "join") == 0);
		body = "{}";
	}
	f->x.arg = f;
	rc = path ? tlbot_http_xfer_start(&w->multi, &f->x,
					  strcmp(row->kind, "send") == 0 || strcmp(row->kind, "state") == 0
						  ? "PUT"
					  : body ? "POST"
						 : "GET",
					  path, body, body ? strlen(body) : 0, NULL, TLBOT_MX_TIMEOUT_MS)
		  : -1;
	free(path);
	if (rc != 0) {
		struct tlbot_http_resp r;

		tlbot_http_resp_init(&r);
		snprintf(r.error, sizeof(r.error), "out of memory");
		slot_done(w, f, TLBOT_ERR_NOMEM, &r, NULL);
		tlbot_http_resp_release(&r);
		return -1;
	}
	return 0;
}

/* A "send" row: over the WebSocket when it is up (the txnId as request
 * id), else REST. */
static void
start_send(struct worker *w, struct flight *f)
{
	json_error_t jerr;
	json_t *c;
	char *text;

	/* end-to-end encryption: synchronous, before the row is handed to the
	 * WebSocket or the multi handle; in an encrypted room it shares the
	 * room key and rewrites f->row into the persisted m.room.encrypted */
	if (w->d->crypto &&
	    tlbot_crypto_prepare_send(w->d->crypto, &w->st, &w->http, &f->row) != 0) {
		struct tlbot_http_resp r;

		tlbot_http_resp_init(&r);
		snprintf(r.error, sizeof(r.error), "room keys not shared yet");
		r.retry_after_ms = 2000; /* this room only waits (the cause is logged) */
		slot_done(w, f, TLBOT_ERR_NET, &r, NULL);
		tlbot_http_resp_release(&r);
		return;
	}
	/* the txnId in the content too (after encryption: in the clear): after
	 * a re-login the row can be found in the room whoever the server tells
	 * transaction_id to (verify_after_relogin) */
	c = json_loads(f->row.content ? f->row.content : "{}", 0, &jerr);
	if (json_is_object(c) && json_object_set_new(c, TXN_KEY, json_string(f->row.txn_id)) == 0 &&
	    (text = json_dumps(c, JSON_COMPACT)) != NULL) {
		free(f->row.content);
		f->row.content = text;
	}
	json_decref(c);
	if (w->d->ws) {
		f->wq = tlbot_ws_send_start(w->d->ws, f->row.room_id, f->row.event_type,
					    f->row.txn_id, f->row.content);
		if (f->wq)
			return;
	}
	start_rest(w, f);
}

/* A "dm" row, or a file to a person: find or create the DM room
 * (blocking: rare once rooms exist), then go on as a row of that room. */
static void
start_dm(struct worker *w, struct flight *f, struct tlbot_http_resp *r)
{
	char *event_id = NULL;
	enum tlbot_err e = resolve_dm(w, &f->row, r);
	int rc;

	if (e == TLBOT_OK) {
		tlbot_store_outbox_row_release(&f->row);
		rc = tlbot_store_outbox_get(&w->st, f->p->id, &f->row);
		if (rc == 0 && strcmp(f->row.kind, "send") == 0) {
			start_send(w, f);
			return;
		}
		if (rc == 0 && strcmp(f->row.kind, "file") == 0 && f->row.room_id && w->d->crypto &&
		    tlbot_crypto_room_encrypted(&w->st, f->row.room_id)) {
			/* an encrypted DM: the file goes up encrypted */
			if (tlbot_crypto_prepare_file(w->d->crypto, &w->st, &w->http, &f->row) == 0 &&
			    strcmp(f->row.kind, "send") == 0) {
				start_send(w, f);
				return;
			}
			snprintf(r->error, sizeof(r->error), "encrypted upload failed");
			slot_done(w, f, TLBOT_ERR_NET, r, NULL);
			return;
		}
		if (rc == 0 && strcmp(f->row.kind, "file") == 0 && f->row.room_id) {
			e = send_file(w, &f->row, &event_id, r);
			slot_done(w, f, e, r, event_id);
			free(event_id);
			return;
		}
		e = TLBOT_ERR_DB;
	}
	slot_done(w, f, e, r, NULL);
}

/* Start the pending row p in a free slot. */
static void
start_row(struct worker *w, struct pend *p)
{
	struct flight *f = NULL;
	struct tlbot_http_resp r;
	char *event_id = NULL;
	enum tlbot_err e;
	int i, rc;

	for (i = 0; i < FLIGHT_MAX; i++)
		if (w->fl[i].p == NULL) {
			f = &w->fl[i];
			break;
		}
	if (f == NULL)
		return;
	rc = tlbot_store_outbox_get(&w->st, p->id, &f->row);
	if (rc != 0) {
		tlbot_store_outbox_row_release(&f->row);
		if (rc > 0) {
			drop_pend(w, p); /* no longer pending */
		} else {
			log_error("outbox: database error; retrying in 1 s");
			p->not_before = tlbot_clock_mono_ms() + 1000;
		}
		return;
	}
	f->p = p;
	f->started_ms = tlbot_clock_mono_ms();
	p->flying = 1;
	w->nflight++;
	tlbot_http_resp_init(&r);
	if (strcmp(f->row.kind, "dm") == 0 ||
	    (strcmp(f->row.kind, "file") == 0 && f->row.room_id == NULL)) {
		start_dm(w, f, &r);
	} else if (strcmp(f->row.kind, "send") == 0) {
		start_send(w, f);
	} else if (strcmp(f->row.kind, "join") == 0 || strcmp(f->row.kind, "leave") == 0 ||
		   strcmp(f->row.kind, "members") == 0 || strcmp(f->row.kind, "state") == 0) {
		/* a state event (MSC4391 command descriptions, on start and
		 * joins: the row's user_id holds the state key) */
		start_rest(w, f);
	} else if (strcmp(f->row.kind, "file") == 0 && w->d->crypto &&
		   tlbot_crypto_room_encrypted(&w->st, f->row.room_id)) {
		/* an encrypted room: the file goes up encrypted, then the row is
		 * an ordinary message (blocking: rare) */
		if (tlbot_crypto_prepare_file(w->d->crypto, &w->st, &w->http, &f->row) == 0 &&
		    strcmp(f->row.kind, "send") == 0) {
			start_send(w, f);
		} else {
			snprintf(r.error, sizeof(r.error), "encrypted upload failed");
			slot_done(w, f, TLBOT_ERR_NET, &r, NULL);
		}
	} else if (strcmp(f->row.kind, "file") == 0) {
		/* upload, then the m.file event (blocking: rare) */
		e = send_file(w, &f->row, &event_id, &r);
		slot_done(w, f, e, &r, event_id);
	} else if (strcmp(f->row.kind, "profile") == 0) {
		/* does a user exist; the command runs again (blocking: rare) */
		e = lookup_profile(w, &f->row, &r);
		slot_done(w, f, e, &r, NULL);
		w->reload = 1; /* the rerun's rows, committed by this thread */
	} else {
		log_error("outbox %s: unknown kind '%s': dropped", f->row.txn_id, f->row.kind);
		tlbot_store_outbox_fail(&w->st, p->id, "unknown kind", 1);
		drop_pend(w, p);
		slot_free(w, f);
	}
	free(event_id);
	tlbot_http_resp_release(&r);
}

/* In flight to dest now. */
static int
dest_flying(const struct worker *w, uint64_t dest)
{
	int i, n = 0;

	for (i = 0; i < FLIGHT_MAX; i++)
		if (w->fl[i].p && w->fl[i].p->dest == dest)
			n++;
	return n;
}

/* Start what may go now; returns the monotonic time of the next row that
 * waits only for the clock (0: none). per_room: the cap of one room's rows
 * in flight (the second pass lifts it: slots no other room wants go to the
 * rooms that have rows). */
static int64_t
fill_pass(struct worker *w, int per_room)
{
	int64_t now = tlbot_clock_mono_ms(), next = 0;
	struct pend *p, *nx;
	int inter_left = w->ninteractive;

	if (w->global_until > now)
		return w->global_until;
	if (++w->gen == 0)
		w->gen = 1; /* 0 marks an empty slot */
	/* after a network failure or 5xx, one request at a time (oldest first)
	 * until the homeserver answers again, so a recovering server is not
	 * hit by every pending row at once and rows retry in their order */
	for (p = w->head; p && w->nflight < (w->probing ? 1 : w->cap) && !*w->d->stop; p = nx) {
		uint64_t k = p->cause * 0x9e3779b97f4a7c15ULL ^ p->dest;
		int blocked = hset_add(&w->seen, w->gen, k);
		int64_t until;

		nx = p->next; /* start_row may drop p */
		inter_left -= p->interactive;
		if (p->barrier)
			blocked |= hset_has(&w->dests, w->gen, p->dest);
		else
			blocked |= hset_has(&w->barriers, w->gen, p->dest);
		hset_add(&w->dests, w->gen, p->dest);
		if (p->barrier)
			hset_add(&w->barriers, w->gen, p->dest);
		if (p->flying || blocked)
			continue;
		until = p->not_before > now ? p->not_before : paused_until(w, p->dest, now);
		if (until > now) {
			if (next == 0 || until < next)
				next = until;
			continue;
		}
		if (dest_flying(w, p->dest) >= per_room)
			continue;
		/* rows of jobs (a burst of prompts) leave a quarter of the slots
		 * to replies, so a command typed meanwhile is not queued behind
		 * them */
		if (!p->interactive && w->cap > 1 && w->nflight >= w->cap - (w->cap + 3) / 4) {
			if (inter_left <= 0)
				break; /* no reply further on to make room for */
			continue;
		}
		start_row(w, p);
	}
	return next;
}

/* Poll the WebSocket sends; a lost answer goes over REST. Returns the
 * shortest time any still waits (ms), or -1 when none does. */
static long
poll_ws(struct worker *w)
{
	long wait = -1;
	int i;

	for (i = 0; i < FLIGHT_MAX; i++) {
		struct flight *f = &w->fl[i];
		struct tlbot_http_resp r;
		char *event_id = NULL;
		enum tlbot_err e = TLBOT_OK;
		int rc;

		if (f->p == NULL || f->wq == NULL)
			continue;
		tlbot_http_resp_init(&r);
		rc = tlbot_ws_send_poll(w->d->ws, f->wq, &event_id, &r, &e);
		if (rc == 2) {
			long left = tlbot_ws_send_wait_ms(f->wq);

			if (wait < 0 || left < wait)
				wait = left;
		} else {
			f->wq = NULL; /* freed by poll */
			if (rc == 0)
				slot_done(w, f, e, &r, event_id);
			else
				start_rest(w, f);
		}
		free(event_id);
		tlbot_http_resp_release(&r);
	}
	return wait;
}

/* Collect the finished REST transfers. */
static void
reap(struct worker *w)
{
	struct tlbot_http_xfer *x;
	enum tlbot_err e;

	while ((x = tlbot_http_multi_done(&w->multi, &e)) != NULL) {
		struct flight *f = x->arg;
		const char *ev = NULL;

		if (e == TLBOT_OK &&
		    (strcmp(f->row.kind, "send") == 0 || strcmp(f->row.kind, "state") == 0)) {
			ev = json_string_value(json_object_get(x->resp.json, "event_id"));
			if (ev == NULL)
				e = TLBOT_ERR_PARSE;
		} else if (e == TLBOT_OK && strcmp(f->row.kind, "members") == 0) {
			e = store_members(w, &f->row, &x->resp);
		} else if (e == TLBOT_OK) {
			log_info("room %s: %s", f->row.room_id,
				 strcmp(f->row.kind, "join") == 0 ? "joined" : "left");
		}
		finish(w, f->p, &f->row, f->started_ms, e, &x->resp, ev);
		slot_free(w, f);
	}
}

static void
wake_multi(void *arg)
{
	tlbot_http_multi_wakeup(arg);
}

/* Is row's event already in its room (the bot's latest 100 there)? Sets
 * *event_id (owned). 0: looked (found or not), -1: could not look. */
static int
find_posted(struct worker *w, const struct tlbot_outbox_row *row, char **event_id)
{
	struct tlbot_http_resp r;
	json_t *filter = json_pack("{s:[s]}", "senders", w->d->user_id), *ev;
	char *fj = filter ? json_dumps(filter, JSON_COMPACT) : NULL;
	size_t i;
	int rc = -1;

	*event_id = NULL;
	tlbot_http_resp_init(&r);
	if (fj && tlbot_mx_messages(&w->http, row->room_id, NULL, "b", 100, fj, &r) == TLBOT_OK) {
		json_array_foreach(json_object_get(r.json, "chunk"), i, ev) {
			const char *a = json_string_value(
				json_object_get(json_object_get(ev, "content"), TXN_KEY));
			const char *b = json_string_value(
				json_object_get(json_object_get(ev, "unsigned"), "transaction_id"));
			const char *id = json_string_value(json_object_get(ev, "event_id"));

			if (id && ((a && strcmp(a, row->txn_id) == 0) ||
				   (b && strcmp(b, row->txn_id) == 0))) {
				*event_id = strdup(id);
				break;
			}
		}
		rc = 0;
	}
	free(fj);
	json_decref(filter);
	tlbot_http_resp_release(&r);
	return rc;
}

/* After a password re-login (kv "outbox_verify", set by daemon.c): the
 * pending rows that may have reached the homeserver under the old token
 * (at most send_concurrency were in flight, the first ones) are looked for
 * in their rooms before they are sent again. A server that scopes txnIds
 * to the access token (spec <= v1.6, Synapse 1.67) would post them a
 * second time, and tells transaction_id only to the sending token; the
 * txnId in the content (TXN_KEY) finds them there too. A file row found
 * there is not uploaded again either. */
static void
verify_after_relogin(struct worker *w)
{
	struct pend *p;
	char *flag = NULL;
	int n = 0, found = 0, failed = 0;

	if (tlbot_store_kv_get(&w->st, "outbox_verify", &flag) != 0)
		return;
	free(flag);
	if (load_pending(w) != 0)
		return; /* the flag stays: next start */
	for (p = w->head; p && n < FLIGHT_MAX; p = p->next, n++) {
		struct tlbot_outbox_row row;
		char *event_id = NULL;

		memset(&row, 0, sizeof(row));
		if (tlbot_store_outbox_get(&w->st, p->id, &row) == 0 && row.kind &&
		    (strcmp(row.kind, "send") == 0 || strcmp(row.kind, "file") == 0) &&
		    row.room_id && row.txn_id) {
			if (find_posted(w, &row, &event_id) != 0)
				failed++;
			else if (event_id && tlbot_store_outbox_done(&w->st, row.id, event_id) == 0) {
				log_info("outbox %s: already in %s as %s (sent before the re-login); not "
					 "sent again", row.txn_id, row.room_id, event_id);
				found++;
			}
		}
		free(event_id);
		tlbot_store_outbox_row_release(&row);
	}
	if (failed)
		log_warnx("outbox: %d row(s) could not be checked after the re-login; sending them "
			  "(a server that scopes txnIds to the token may show them twice)", failed);
	log_info("outbox: checked %d pending row(s) after the re-login, %d already sent", n, found);
	tlbot_store_kv_del(&w->st, "outbox_verify");
}

/* Settings from the config, the store connection and HTTP handles of
 * the worker's own. Returns 0, or -1 (what opened is released by the
 * caller's cleanup). */
static int
worker_open(struct worker *w, struct tlbot_daemon *d)
{
	w->d = d;
	w->tail = &w->head;
	w->cap = d->cfg->send_concurrency > 0 ? d->cfg->send_concurrency : 8;
	if (w->cap > FLIGHT_MAX)
		w->cap = FLIGHT_MAX;
	w->per_room = d->cfg->send_per_room > 0 ? d->cfg->send_per_room : 3;
	w->give_up_ms = (int64_t)(d->cfg->send_give_up_s > 0 ? d->cfg->send_give_up_s : 300) * 1000;
	if (tlbot_store_open(&w->st, d->cfg->database, NULL) != 0 ||
	    tlbot_http_init(&w->http, d->base_url, d->cfg->ca_file) != 0 ||
	    tlbot_http_set_token(&w->http, d->token) != 0 ||
	    tlbot_http_multi_init(&w->multi, &w->http) != 0)
		return -1;
	return 0;
}

/* Once an hour, prune; once a second, fire the due jobs. Returns 1 when
 * jobs ran (their rows are committed by this thread: no wake-up comes). */
static int
run_jobs(struct worker *w, time_t now, time_t *last_jobs, int64_t *last_prune_ms)
{
	if (tlbot_clock_mono_ms() - *last_prune_ms > 3600 * 1000) {
		/* keep the database bounded: what was sent or fired a month
		 * ago is history nobody replays */
		int n = tlbot_store_prune(&w->st, time(NULL) - 30 * 86400);

		if (n > 0)
			log_info("housekeeping: pruned %d old outbox rows and jobs", n);
		*last_prune_ms = tlbot_clock_mono_ms();
	}
	if (now == *last_jobs)
		return 0;
	if (tlbot_router_run_jobs(&w->router, now) < 0) {
		log_error("scheduler: database error; retrying in 1 s");
		tlbot_daemon_sleep(w->d, 1000);
	}
	*last_jobs = now;
	return 1;
}

void *
tlbot_worker_main(void *arg)
{
	struct worker *w = calloc(1, sizeof(*w));
	struct tlbot_daemon *d = arg;
	time_t last_jobs = 0;
	int64_t last_prune_ms = -3600 * 1000;
	int i;

	if (w == NULL) {
		log_error("worker: cannot start: out of memory");
		tlbot_daemon_fail(d, 1);
		return NULL;
	}
	if (worker_open(w, d) != 0) {
		log_error("worker: cannot start");
		tlbot_daemon_fail(d, 1);
		goto out;
	}
	pthread_mutex_lock(&d->lock);
	d->wake_hook = wake_multi;
	d->wake_arg = &w->multi;
	d->woken = 1; /* load what a previous run left pending */
	pthread_mutex_unlock(&d->lock);
	tlbot_router_init(&w->router, d->cfg, d->user_id, &w->st);
	verify_after_relogin(w);
	while (!*d->stop) {
		time_t now = tlbot_clock_now();
		int64_t next, mono;
		long timeout = 1000, ws_wait;
		int woken, jobs_ran;
		unsigned finished = w->finished;

		jobs_ran = run_jobs(w, now, &last_jobs, &last_prune_ms);
		pthread_mutex_lock(&d->lock);
		woken = d->woken;
		d->woken = 0;
		pthread_mutex_unlock(&d->lock);
		if ((woken || w->more || jobs_ran || w->reload) && load_pending(w) != 0) {
			log_error("outbox: database error; retrying in 1 s");
			tlbot_daemon_sleep(d, 1000);
			continue;
		}
		if (d->crypto) /* key upkeep, queued to-device messages */
			tlbot_crypto_tick(d->crypto, &w->st, &w->http);
		next = fill_pass(w, w->per_room);
		if (w->nflight < w->cap && w->head)
			fill_pass(w, w->cap);
		/* wait for a transfer, a wake-up (new rows, a WebSocket answer),
		 * the next retry, or the scheduler's next second */
		mono = tlbot_clock_mono_ms();
		if (next > 0 && next - mono < timeout)
			timeout = next > mono ? (long)(next - mono) : 1;
		ws_wait = d->ws ? poll_ws(w) : -1;
		if (ws_wait >= 0 && ws_wait + 1 < timeout)
			timeout = ws_wait + 1;
		if (w->finished != finished)
			timeout = 0; /* a row finished in place (DM room, file, members):
				      * what it held back may go now */
		tlbot_http_multi_run(&w->multi, timeout);
		reap(w);
		if (d->ws)
			poll_ws(w);
	}
out:
	pthread_mutex_lock(&d->lock);
	d->wake_hook = NULL;
	d->wake_arg = NULL;
	pthread_mutex_unlock(&d->lock);
	for (i = 0; i < FLIGHT_MAX; i++)
		if (w->fl[i].p)
			slot_free(w, &w->fl[i]);
	while (w->head)
		drop_pend(w, w->head);
	tlbot_http_multi_release(&w->multi);
	tlbot_http_release(&w->http);
	tlbot_store_close(&w->st);
	free(w);
	return NULL;
}
