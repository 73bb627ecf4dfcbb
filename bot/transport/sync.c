/* The /sync long-poll transport. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

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

int
tlbot_sync_run(struct tlbot_daemon *d)
{
	struct tlbot_http_resp r;
	char *since = NULL;
	int attempt = 0, apply_failures = 0, refused = 0;

	tlbot_sync_prepare(d);
	tlbot_metrics_transport("sync");
	if (tlbot_store_kv_get(&d->st, "next_batch", &since) != 0)
		since = NULL;
	log_info("sync: starting %s", since ? "from the stored position" :
		 "fresh: history before now is marked handled, not answered");
	tlbot_http_resp_init(&r);
	/* sync_until_ms: the auto transport re-probes the WebSocket (ws.c) */
	while (!*d->stop && !(d->sync_until_ms && tlbot_clock_mono_ms() >= d->sync_until_ms)) {
		enum tlbot_err e = tlbot_mx_sync(&d->http, since, d->filter,
						 since ? d->cfg->sync_timeout_ms : 0, &r);
		const char *next;

		if (e == TLBOT_ERR_ABORT || *d->stop)
			break;
		if (e != TLBOT_OK) {
			long wait;

			if (e == TLBOT_ERR_HTTP && strcmp(r.errcode, "M_UNKNOWN_TOKEN") == 0) {
				log_error("sync: the homeserver rejected the access token (M_UNKNOWN_TOKEN): "
					  "it was logged out or revoked; restart tlbot to log in again, or "
					  "give it a new access token");
				tlbot_daemon_fail(d, 2);
				break;
			}
			if (!tlbot_http_retryable(e, &r) && refused++ > 0 && since) {
				/* refused again with a new filter: the position itself
				 * (a since the server no longer knows, e.g. after its
				 * database was restored). Start afresh: what came
				 * meanwhile is marked handled, as at a first start. */
				log_error("sync: %s %s (HTTP %ld) again with a new filter: the homeserver "
					  "does not know our position; starting afresh (messages sent "
					  "meanwhile are not answered)", r.errcode, r.error, r.status);
				free(since);
				since = NULL;
				tlbot_store_kv_del(&d->st, "next_batch");
				refused = 0;
				continue;
			} else if (!tlbot_http_retryable(e, &r)) {
				/* e.g. a filter or position the server no longer knows */
				log_error("sync: %s %s (HTTP %ld); retrying with a new filter", r.errcode,
					  r.error, r.status);
				free(d->filter);
				tlbot_store_kv_del(&d->st, "filter_id");
				tlbot_store_kv_del(&d->st, "filter_json");
				setup_filter(d);
			}
			/* a rate limit says how long to wait; other failures back off */
			if (r.retry_after_ms >= 0)
				wait = r.retry_after_ms;
			else
				wait = tlbot_backoff_ms(attempt++, 500, 60000);
			log_warnx("sync: %s: %s%s%s; retrying in %ld ms", tlbot_strerror(e), r.errcode,
				  r.errcode[0] ? " " : "", r.error, wait);
			tlbot_daemon_sleep(d, wait);
			continue;
		}
		/* after repeated failures, isolate each event so one poison
		 * event is skipped instead of stalling every room */
		d->router.isolate = apply_failures >= 3;
		log_debug("sync: batch %s -> %s", since ? since : "(start)",
			  json_string_value(json_object_get(r.json, "next_batch")));
		if (tlbot_router_apply(&d->router, r.json, since) != 0) {
			long wait = tlbot_backoff_ms(attempt++, 500, 60000);

			apply_failures++;
			log_error("sync: could not apply a batch (see above); nothing of it was kept; "
				  "retrying in %ld ms%s", wait, apply_failures >= 3 ?
				  ", event by event" : "");
			tlbot_daemon_sleep(d, wait);
			continue;
		}
		apply_failures = 0;
		refused = 0;
		if (attempt > 0)
			log_info("sync: recovered after %d failed attempts", attempt);
		attempt = 0;
		next = json_string_value(json_object_get(r.json, "next_batch"));
		free(since);
		since = strdup(next);
		tlbot_daemon_wake(d);
		/* A large batch (a first sync in thousands of rooms) leaves its
		 * body and its JSON tree (~9x the body) in the heap: free them
		 * now and hand the pages back, or the idle daemon keeps its peak
		 * (bench/run: 97 MB idle after a first sync in 5,000 rooms). */
		if (r.body.len > TRIM_AFTER_BYTES) {
			tlbot_http_resp_release(&r);
			tlbot_http_resp_init(&r);
#ifdef __GLIBC__
			malloc_trim(0);
#endif
		}
	}
	tlbot_http_resp_release(&r);
	free(since);
	return 0;
}
