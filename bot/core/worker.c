/* The worker thread: sends the outbox in order and fires scheduled jobs.
 * It has its own store connection and HTTP handle, so sending never waits
 * behind the receive side's long-poll. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tlbot/clock.h"
#include "tlbot/daemon.h"
#include "tlbot/log.h"
#include "tlbot/matrix.h"
#include "tlbot/metrics.h"
#include "tlbot/ws.h"

#define SEND_BACKOFF_BASE_MS 250
#define SEND_BACKOFF_CAP_MS 60000

struct worker {
	struct tlbot_daemon *d;
	struct tlbot_store st;
	struct tlbot_http http;
	struct tlbot_router router;  /* for jobs */
	int attempt;                 /* consecutive retryable failures */
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
		e = tlbot_mx_create_dm(&w->http, row->user_id, &room, r);
		if (e != TLBOT_OK)
			return e;
		/* commit the room at once so a retry reuses it */
		if (tlbot_store_dm_set(&w->st, row->user_id, room) != 0) {
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
fetch_members(struct worker *w, const struct tlbot_outbox_row *row, struct tlbot_http_resp *r)
{
	enum tlbot_err e = tlbot_mx_joined_members(&w->http, row->room_id, r);
	const json_t *joined;
	const char *user;
	json_t *info;
	int n = 0;

	if (e != TLBOT_OK)
		return e;
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

/* Send one outbox row. Returns 1 when the row is finished (sent or failed
 * for good), 0 when it must be retried later, -1 when stopping. */
static int
send_row(struct worker *w, struct tlbot_outbox_row *row)
{
	struct tlbot_http_resp r;
	char *event_id = NULL;
	enum tlbot_err e;
	int done = 0;

	tlbot_http_resp_init(&r);
	if (strcmp(row->kind, "dm") == 0 || (strcmp(row->kind, "file") == 0 && row->room_id == NULL)) {
		e = resolve_dm(w, row, &r);
		if (e == TLBOT_OK) {
			tlbot_http_resp_release(&r);
			return 1; /* the row is now a "send": picked up next */
		}
	} else if (strcmp(row->kind, "send") == 0) {
		/* WebSocket transport (ws.c): over the socket when it is up, with
		 * the txnId as request id; REST when it is down or the answer was
		 * lost (the same txnId makes the resend harmless). */
		int ws_rc = w->d->ws ? tlbot_ws_send(w->d->ws, row->room_id, row->event_type,
						     row->txn_id, row->content, &event_id, &r, &e)
				     : 1;

		if (ws_rc < 0)
			e = TLBOT_ERR_ABORT;
		else if (ws_rc > 0)
			e = tlbot_mx_send(&w->http, row->room_id, row->event_type, row->txn_id,
					  row->content, &event_id, &r);
	} else if (strcmp(row->kind, "join") == 0) {
		e = tlbot_mx_join(&w->http, row->room_id, &r);
		if (e == TLBOT_OK)
			log_info("room %s: joined", row->room_id);
	} else if (strcmp(row->kind, "leave") == 0) {
		e = tlbot_mx_leave(&w->http, row->room_id, &r);
		if (e == TLBOT_OK)
			log_info("room %s: left", row->room_id);
	} else if (strcmp(row->kind, "file") == 0) {
		e = send_file(w, row, &event_id, &r);
	} else if (strcmp(row->kind, "members") == 0) {
		e = fetch_members(w, row, &r);
	} else if (strcmp(row->kind, "profile") == 0) {
		e = lookup_profile(w, row, &r);
	} else {
		log_error("outbox %s: unknown kind '%s': dropped", row->txn_id, row->kind);
		tlbot_store_outbox_fail(&w->st, row->id, "unknown kind", 1);
		tlbot_http_resp_release(&r);
		return 1;
	}
	if (e == TLBOT_OK) {
		if (tlbot_store_outbox_done(&w->st, row->id, event_id) != 0)
			done = 0; /* retried: the same txnId makes the resend harmless */
		else
			done = 1;
		log_debug("outbox %s: %s to %s done%s%s", row->txn_id, row->kind,
			  row->room_id ? row->room_id : row->user_id, event_id ? " as " : "",
			  event_id ? event_id : "");
		w->attempt = 0;
		tlbot_metrics_send("ok", "");
	} else if (e == TLBOT_ERR_ABORT) {
		done = -1;
	} else if (e == TLBOT_ERR_HTTP && strcmp(r.errcode, "M_UNKNOWN_TOKEN") == 0) {
		log_error("sending: the homeserver rejected the access token (M_UNKNOWN_TOKEN); "
			  "stopping: restart tlbot to log in again or give it a new token");
		tlbot_daemon_fail(w->d, 2);
		done = -1;
	} else if (tlbot_http_retryable(e, &r)) {
		long wait;

		/* a rate limit says how long to wait: honour it without growing
		 * the backoff, which is for failures whose end nobody announced */
		if (r.retry_after_ms >= 0)
			wait = r.retry_after_ms;
		else
			wait = tlbot_backoff_ms(w->attempt++, SEND_BACKOFF_BASE_MS, SEND_BACKOFF_CAP_MS);
		tlbot_store_outbox_fail(&w->st, row->id, r.error, 0);
		tlbot_metrics_send("retry", r.errcode[0] ? r.errcode : r.status > 0 ? "HTTP" : tlbot_strerror(e));
		if (r.status == 429)
			tlbot_metrics_rate_limited(wait);
		log_warnx("outbox %s: %s to %s failed (%s: %s%s%s, HTTP %ld); retrying in %ld ms",
			  row->txn_id, row->kind, row->room_id ? row->room_id : row->user_id,
			  tlbot_strerror(e), r.errcode, r.errcode[0] ? " " : "", r.error, r.status, wait);
		done = tlbot_daemon_sleep(w->d, wait) ? -1 : 0;
	} else {
		log_error("outbox %s: %s to %s failed for good: %s %s (HTTP %ld); dropped",
			  row->txn_id, row->kind, row->room_id ? row->room_id : row->user_id,
			  r.errcode, r.error, r.status);
		tlbot_store_outbox_fail(&w->st, row->id, r.errcode[0] ? r.errcode : r.error, 1);
		tlbot_metrics_send("failed", r.errcode[0] ? r.errcode : r.status > 0 ? "HTTP" : tlbot_strerror(e));
		if (strcmp(row->kind, "join") == 0)
			tlbot_store_room_set(&w->st, row->room_id, "leave", NULL);
		w->attempt = 0;
		done = 1;
	}
	free(event_id);
	tlbot_http_resp_release(&r);
	return done;
}

/* Wait until woken, stopping, or ms elapsed. */
static void
wait_for_work(struct worker *w, long ms)
{
	struct tlbot_daemon *d = w->d;
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&d->lock);
	while (!d->woken && !*d->stop)
		if (pthread_cond_timedwait(&d->wake, &d->lock, &ts) != 0)
			break;
	d->woken = 0;
	pthread_mutex_unlock(&d->lock);
}

void *
tlbot_worker_main(void *arg)
{
	struct worker w;
	struct tlbot_daemon *d = arg;
	time_t last_jobs = 0;
	int64_t last_prune_ms = -3600 * 1000;

	memset(&w, 0, sizeof(w));
	w.d = d;
	if (tlbot_store_open(&w.st, d->cfg->database, NULL) != 0 ||
	    tlbot_http_init(&w.http, d->base_url, d->cfg->ca_file) != 0 ||
	    tlbot_http_set_token(&w.http, d->token) != 0) {
		log_error("worker: cannot start");
		tlbot_daemon_fail(d, 1);
		goto out;
	}
	tlbot_router_init(&w.router, d->cfg, d->user_id, &w.st);
	while (!*d->stop) {
		struct tlbot_outbox_row row;
		time_t now = tlbot_clock_now();
		int rc;

		if (tlbot_clock_mono_ms() - last_prune_ms > 3600 * 1000) {
			/* keep the database bounded: what was sent or fired a month
			 * ago is history nobody replays */
			int n = tlbot_store_prune(&w.st, time(NULL) - 30 * 86400);

			if (n > 0)
				log_info("housekeeping: pruned %d old outbox rows and jobs", n);
			last_prune_ms = tlbot_clock_mono_ms();
		}
		if (now != last_jobs) {
			if (tlbot_router_run_jobs(&w.router, now) < 0) {
				log_error("scheduler: database error; retrying in 1 s");
				tlbot_daemon_sleep(d, 1000);
			}
			last_jobs = now;
		}
		rc = tlbot_store_outbox_next(&w.st, &row);
		if (rc < 0) {
			log_error("outbox: database error; retrying in 1 s");
			tlbot_daemon_sleep(d, 1000);
			continue;
		}
		if (rc == 1) {
			/* idle: wake for new rows, or each second for the scheduler */
			wait_for_work(&w, 1000);
			continue;
		}
		rc = send_row(&w, &row);
		tlbot_store_outbox_row_release(&row);
		if (rc < 0)
			break;
	}
out:
	tlbot_http_release(&w.http);
	tlbot_store_close(&w.st);
	return NULL;
}
