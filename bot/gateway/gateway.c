/* tlbot-wsgateway: serves the Matrix WebSockets API draft ("websockets.rst")
 * in front of any homeserver.
 *
 *   GET /_matrix/client/unstable/stream?since=&filter=  (subprotocol m.json,
 *   token in Authorization: Bearer or ?access_token=) is accepted when the
 *   upstream homeserver's /account/whoami accepts the token. Then, per
 *   connection:
 *     - a sync thread long-polls upstream /sync with the client's token,
 *       since and filter, and pushes each non-empty batch (the first one
 *       always) as one message, in 16 KiB frames;
 *     - a request thread runs the client's requests in order: send -> PUT
 *       /rooms/{roomId}/send/{eventType}/{id} (the request id is the txnId),
 *       state -> GET (or PUT with content) /rooms/{roomId}/state/{type}/{key};
 *     - ping is answered at once by the libwebsockets thread.
 *   Answers are {"id","result"} or {"id","error":{errcode,error,
 *   [retry_after_ms],status}} (the upstream error body plus its HTTP status).
 *
 * Memory per connection is bounded: a client whose unsent data would exceed
 * --max-buffer-kb is a slow consumer and is disconnected (close 1008); it
 * reconnects and resumes from its own stored since. (One batch is always
 * accepted when nothing is pending, so the bound is the limit plus one
 * batch, itself capped at MAX_UPSTREAM_BODY.) Queued requests are
 * bounded too (MAX_QUEUED_REQS).
 *
 * Bodies from the homeserver are decoded with tlbot_json_decode (tolerant
 * of \u0000 and lone surrogates, like the bot), and batches are forwarded
 * as the homeserver sent them.
 *
 * Threads: the libwebsockets service loop in main(); two threads per
 * connection. The threads never call libwebsockets except
 * lws_cancel_service(); they hand data over under gw.lock and the loop picks
 * it up in LWS_CALLBACK_EVENT_WAIT_CANCELLED. A connection is freed by
 * whichever of its three users (the loop, the two threads) lets go last. */
#include <curl/curl.h>
#include <getopt.h>
#include <jansson.h>
#include <libwebsockets.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tlbot/buf.h"
#include "tlbot/clock.h"
#include "tlbot/http.h"
#include "tlbot/log.h"
#include "tlbot/matrix.h"

#define STREAM_PATH        "/_matrix/client/unstable/stream"
#define API                "/_matrix/client/v3"
#define FRAME_BYTES        (16 * 1024)
#define MAX_CLIENT_MESSAGE (1024 * 1024)
#define MAX_UPSTREAM_BODY  (64u * 1024 * 1024)
#define MAX_QUEUED_REQS    64
#define SYNC_TIMEOUT_MS    30000L
#define SYNC_RETRY_CAP_MS  5000L
#define TICK_US            (200 * LWS_US_PER_MS)

struct msg {
	struct msg *next;
	size_t len, off; /* bytes, bytes already written */
	char *text;      /* owned */
};

struct req {
	struct req *next;
	json_t *obj; /* the request (new reference) */
};

struct conn {
	struct conn *next; /* gw.conns, while the socket is open */
	int refs;          /* loop + sync thread + request thread */
	unsigned long id;
	struct lws *wsi;  /* NULL once closed */
	int closing;      /* threads: stop */
	atomic_int abort; /* curl: abort transfers */
	int started;
	char *token, *user_id, *since, *filter;
	char peer[64];
	/* to the client, under gw.lock */
	struct msg *out_head, *out_tail;
	size_t out_bytes;
	int kick; /* close: 1 = with a close frame, 2 = at once */
	int close_code;
	char close_reason[64];
	/* from the client, under gw.lock */
	struct req *req_head, *req_tail;
	int nreqs;
	pthread_cond_t req_cond;
	/* loop thread only */
	struct tlbot_buf rx;
};

struct pss {
	struct conn *c;
};

static struct {
	char *upstream; /* http(s)://host:port, no trailing slash */
	char *listen_host;
	int listen_port;
	char *tls_cert, *tls_key, *ca_file;
	int max_conns;
	size_t max_buffer;
	pthread_mutex_t lock;
	pthread_cond_t threads_cond;
	struct lws_context *ctx; /* under lock for the threads */
	struct conn *conns;
	int nconns, nthreads;
	unsigned long next_id;
	lws_sorted_usec_list_t tick;
} gw;

static atomic_int stopping; /* lock-free: set from the signal handler */

static void
on_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

/* ---- upstream HTTP (libcurl, abortable per connection) -------------------- */

struct up_resp {
	long status;
	struct tlbot_buf body;
};

static size_t
on_body(char *p, size_t size, size_t n, void *arg)
{
	struct tlbot_buf *b = arg;

	return tlbot_buf_add(b, p, size * n) == 0 ? size * n : 0;
}

static int
on_progress(void *arg, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
	atomic_int *abort_flag = arg;

	(void)a, (void)b, (void)c, (void)d;
	return *abort_flag || stopping;
}

struct upload {
	const char *p;
	size_t left;
};

/* Each thread keeps one curl handle, so its requests reuse the connection
 * to the homeserver (keep-alive, as the bot's own REST client does); reset
 * between requests, which keeps live connections. NULL on OOM. */
static _Thread_local CURL *curl_of_thread;

static CURL *
thread_curl(void)
{
	if (curl_of_thread == NULL)
		curl_of_thread = curl_easy_init();
	else
		curl_easy_reset(curl_of_thread);
	return curl_of_thread;
}

static void
thread_curl_release(void)
{
	if (curl_of_thread)
		curl_easy_cleanup(curl_of_thread);
	curl_of_thread = NULL;
}

/* One request to upstream + path. Returns 0 when an HTTP answer arrived
 * (any status, r->status and r->body set), -1 on a network error or abort. */
static int
up_request(struct conn *c, const char *method, const char *path, const char *body, long timeout_ms,
           struct up_resp *r)
{
	CURL *h = thread_curl();
	struct curl_slist *hdrs = NULL;
	struct tlbot_buf url, auth;
	CURLcode rc;

	r->status = 0;
	tlbot_buf_init(&r->body, MAX_UPSTREAM_BODY);
	if (h == NULL)
		return -1;
	tlbot_buf_init(&url, 64 * 1024);
	tlbot_buf_init(&auth, 8192);
	if (tlbot_buf_printf(&url, "%s%s", gw.upstream, path) != 0 ||
	    tlbot_buf_printf(&auth, "Authorization: Bearer %s", c->token) != 0) {
		tlbot_buf_release(&url);
		tlbot_buf_release(&auth);
		return -1;
	}
	hdrs = curl_slist_append(hdrs, tlbot_buf_str(&auth));
	if (body)
		hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
	curl_easy_setopt(h, CURLOPT_URL, tlbot_buf_str(&url));
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	if (body) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	}
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &r->body);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, &c->abort);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "tlbot-wsgateway/" TLBOT_VERSION);
	if (gw.ca_file)
		curl_easy_setopt(h, CURLOPT_CAINFO, gw.ca_file);
	rc = curl_easy_perform(h);
	if (rc == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
	else if (rc != CURLE_ABORTED_BY_CALLBACK)
		log_debug("conn %lu: upstream %s: %s", c->id, method, curl_easy_strerror(rc));
	curl_slist_free_all(hdrs);
	tlbot_buf_release(&url);
	tlbot_buf_release(&auth);
	return rc == CURLE_OK ? 0 : -1;
}

static char *
esc(const char *s)
{
	return curl_easy_escape(NULL, s ? s : "", 0);
}

/* ---- connections ------------------------------------------------------------ */

static void
wake_loop_locked(void)
{
	if (gw.ctx)
		lws_cancel_service(gw.ctx);
}

static void
conn_free(struct conn *c)
{
	struct msg *m;
	struct req *q;

	while ((m = c->out_head)) {
		c->out_head = m->next;
		free(m->text);
		free(m);
	}
	while ((q = c->req_head)) {
		c->req_head = q->next;
		json_decref(q->obj);
		free(q);
	}
	pthread_cond_destroy(&c->req_cond);
	tlbot_buf_release(&c->rx);
	free(c->token);
	free(c->user_id);
	free(c->since);
	free(c->filter);
	free(c);
}

/* Drop one reference (under gw.lock); frees on the last one. */
static void
conn_unref_locked(struct conn *c)
{
	if (--c->refs == 0)
		conn_free(c);
}

/* Queue text (taken over) to the client. Under gw.lock. Returns 0, or -1
 * when it would exceed the connection's buffer (slow consumer: the
 * connection is closed and text freed). */
static int
queue_locked(struct conn *c, char *text, int bounded)
{
	struct msg *m;
	size_t len = strlen(text);

	if (c->wsi == NULL || c->kick) {
		free(text);
		return -1;
	}
	/* one batch is always accepted when nothing is pending, so a batch
	 * larger than the limit still gets through to a client that reads */
	if (bounded && c->out_bytes > 0 && c->out_bytes + len > gw.max_buffer) {
		log_warnx("conn %lu (%s): slow consumer: %zu bytes unsent, %zu more would pass the "
		          "%zu byte limit; disconnecting",
		          c->id, c->user_id, c->out_bytes, len, gw.max_buffer);
		c->kick = 2;
		c->close_code = LWS_CLOSE_STATUS_POLICY_VIOLATION;
		snprintf(c->close_reason, sizeof(c->close_reason), "slow consumer");
		free(text);
		wake_loop_locked();
		return -1;
	}
	m = calloc(1, sizeof(*m));
	if (m == NULL) {
		free(text);
		return -1;
	}
	m->text = text;
	m->len = len;
	if (c->out_tail)
		c->out_tail->next = m;
	else
		c->out_head = m;
	c->out_tail = m;
	c->out_bytes += len;
	wake_loop_locked();
	return 0;
}

static void
queue_json_locked(struct conn *c, json_t *obj)
{
	char *text = json_dumps(obj, JSON_COMPACT);

	json_decref(obj);
	if (text)
		queue_locked(c, text, 0);
}

static void
kick_locked(struct conn *c, int code, const char *reason)
{
	if (c->kick)
		return;
	c->kick = 1;
	c->close_code = code;
	snprintf(c->close_reason, sizeof(c->close_reason), "%s", reason);
	wake_loop_locked();
}

static void
thread_exit(struct conn *c)
{
	thread_curl_release();
	pthread_mutex_lock(&gw.lock);
	conn_unref_locked(c);
	gw.nthreads--;
	pthread_cond_broadcast(&gw.threads_cond);
	pthread_mutex_unlock(&gw.lock);
}

static int
closing(struct conn *c)
{
	int v;

	pthread_mutex_lock(&gw.lock);
	v = c->closing || c->kick;
	pthread_mutex_unlock(&gw.lock);
	return v || stopping;
}

static void
sleep_abortable(struct conn *c, long ms)
{
	while (ms > 0 && !closing(c)) {
		struct timespec ts = {0, 100 * 1000000L};

		nanosleep(&ts, NULL);
		ms -= 100;
	}
}

/* Whether a sync response carries anything for the client. */
static int
batch_empty(const json_t *b)
{
	static const char *const sections[] = {"join", "invite", "leave", "knock"};
	static const char *const lists[] = {"account_data", "presence", "to_device"};
	const json_t *rooms = json_object_get(b, "rooms"), *dl;
	size_t i;

	for (i = 0; i < sizeof(sections) / sizeof(sections[0]); i++)
		if (json_object_size(json_object_get(rooms, sections[i])) > 0)
			return 0;
	for (i = 0; i < sizeof(lists) / sizeof(lists[0]); i++)
		if (json_array_size(json_object_get(json_object_get(b, lists[i]), "events")) > 0)
			return 0;
	dl = json_object_get(b, "device_lists");
	return json_array_size(json_object_get(dl, "changed")) == 0 &&
	       json_array_size(json_object_get(dl, "left")) == 0;
}

/* Error object for an upstream answer (or its absence). New reference. */
static json_t *
error_from(const struct up_resp *r, int ok)
{
	json_error_t jerr;
	json_t *e = NULL;

	if (ok)
		e = tlbot_json_decode(r->body.data ? r->body.data : "", r->body.len, &jerr);
	if (!json_is_object(e) || !json_is_string(json_object_get(e, "errcode"))) {
		json_decref(e);
		e = ok ? json_pack("{s:s, s:s}", "errcode", "M_UNKNOWN", "error",
		                   "unexpected answer from the homeserver")
		       : json_pack("{s:s, s:s}", "errcode", "M_UNKNOWN", "error",
		                   "the homeserver could not be reached");
	}
	if (e)
		json_object_set_new(e, "status", json_integer(ok ? r->status : 502));
	return e;
}

/* The upstream /sync failed (ok: it answered, with r->status): tell the
 * client and close for a rejected token or a refused since/filter
 * (returns -1), else wait to retry (returns 0; r->body released). */
static int
sync_error(struct conn *c, struct up_resp *r, int ok, int *attempt)
{
	json_t *e = error_from(r, ok);
	const char *code = json_string_value(json_object_get(e, "errcode"));
	/* next to the homeserver: retry soon, the client waits */
	long wait = tlbot_backoff_ms((*attempt)++, 250, SYNC_RETRY_CAP_MS);

	if (ok && (r->status == 401 || r->status == 403 ||
	           (code && strcmp(code, "M_UNKNOWN_TOKEN") == 0))) {
		/* tell the client why, then close */
		pthread_mutex_lock(&gw.lock);
		queue_json_locked(c, json_pack("{s:O}", "error", e));
		kick_locked(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, "unauthorized");
		pthread_mutex_unlock(&gw.lock);
		json_decref(e);
		tlbot_buf_release(&r->body);
		return -1;
	}
	if (ok && r->status == 400) {
		/* a since or filter the homeserver refuses: the client
		 * must start again; tell it and close */
		pthread_mutex_lock(&gw.lock);
		queue_json_locked(c, json_pack("{s:O}", "error", e));
		kick_locked(c, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION,
		            "sync refused");
		pthread_mutex_unlock(&gw.lock);
		json_decref(e);
		tlbot_buf_release(&r->body);
		return -1;
	}
	if (json_is_integer(json_object_get(e, "retry_after_ms")))
		wait = (long)json_integer_value(
		        json_object_get(e, "retry_after_ms"));
	log_warnx("conn %lu (%s): upstream /sync failed (HTTP %ld); retrying in "
	          "%ld ms",
	          c->id, c->user_id, r->status, wait);
	json_decref(e);
	tlbot_buf_release(&r->body);
	sleep_abortable(c, wait);
	return 0;
}

static void *
sync_thread(void *arg)
{
	struct conn *c = arg;
	int attempt = 0, first = 1;

	while (!closing(c)) {
		struct up_resp r;
		struct tlbot_buf path;
		char *s = esc(c->since), *f = esc(c->filter);
		json_error_t jerr;
		json_t *b;
		const char *next;
		int ok;

		tlbot_buf_init(&path, 64 * 1024);
		tlbot_buf_printf(&path, API "/sync?timeout=%ld%s%s%s%s",
		                 /* a first sync: not from Synapse's response cache */
		                 c->since ? SYNC_TIMEOUT_MS : tlbot_mx_first_sync_timeout_ms(),
		                 c->since ? "&since=" : "",
		                 c->since ? s : "", c->filter ? "&filter=" : "",
		                 c->filter ? f : "");
		curl_free(s);
		curl_free(f);
		ok = up_request(c, "GET", tlbot_buf_str(&path), NULL, SYNC_TIMEOUT_MS + 30000,
		                &r) == 0;
		tlbot_buf_release(&path);
		if (closing(c)) {
			tlbot_buf_release(&r.body);
			break;
		}
		if (!ok || r.status != 200) {
			if (sync_error(c, &r, ok, &attempt) != 0)
				break;
			continue;
		}
		attempt = 0;
		b = tlbot_json_decode(r.body.data ? r.body.data : "", r.body.len, &jerr);
		next = json_string_value(json_object_get(b, "next_batch"));
		if (next == NULL) {
			log_warnx("conn %lu: upstream /sync answer without next_batch; retrying",
			          c->id);
			json_decref(b);
			tlbot_buf_release(&r.body);
			sleep_abortable(c, 1000);
			continue;
		}
		if (first || !batch_empty(b)) {
			char *text = tlbot_buf_detach(&r.body);
			int rc;

			pthread_mutex_lock(&gw.lock);
			rc = text ? queue_locked(c, text, 1) : -1;
			pthread_mutex_unlock(&gw.lock);
			if (rc != 0) {
				json_decref(b);
				break;
			}
		}
		first = 0;
		free(c->since);
		c->since = strdup(next);
		json_decref(b);
		tlbot_buf_release(&r.body);
	}
	thread_exit(c);
	return NULL;
}

/* Run one request; returns the answer (new reference). */
static json_t *
run_request(struct conn *c, const json_t *rq)
{
	const char *id = json_string_value(json_object_get(rq, "id"));
	const char *method = json_string_value(json_object_get(rq, "method"));
	const json_t *params = json_object_get(rq, "params");
	const char *room, *type, *key;
	const json_t *content;
	struct tlbot_buf path;
	char *body = NULL, *er = NULL, *et = NULL, *ek = NULL, *eid = NULL;
	struct up_resp r;
	json_t *answer;
	int ok;

	if (params == NULL)
		params = json_object_get(rq, "param");
	room = json_string_value(json_object_get(params, "room_id"));
	type = json_string_value(json_object_get(params, "event_type"));
	key = json_string_value(json_object_get(params, "state_key"));
	content = json_object_get(params, "content");
	if (room == NULL || type == NULL ||
	    (strcmp(method, "send") == 0 && !json_is_object(content)))
		return json_pack("{s:s, s:{s:s, s:s, s:i}}", "id", id, "error", "errcode",
		                 "M_MISSING_PARAM", "error",
		                 "room_id, event_type (and content) required", "status", 400);
	r.status = 0;
	tlbot_buf_init(&r.body, 1);
	er = esc(room);
	et = esc(type);
	ek = esc(key ? key : "");
	eid = esc(id);
	tlbot_buf_init(&path, 64 * 1024);
	if (strcmp(method, "send") == 0) {
		tlbot_buf_printf(&path, API "/rooms/%s/send/%s/%s", er, et, eid);
		body = json_dumps(content, JSON_COMPACT);
		ok = body && up_request(c, "PUT", tlbot_buf_str(&path), body, 60000, &r) == 0;
	} else {
		tlbot_buf_printf(&path, API "/rooms/%s/state/%s/%s", er, et, ek);
		if (json_is_object(content)) {
			body = json_dumps(content, JSON_COMPACT);
			ok = body &&
			     up_request(c, "PUT", tlbot_buf_str(&path), body, 60000, &r) == 0;
		} else {
			ok = up_request(c, "GET", tlbot_buf_str(&path), NULL, 60000, &r) == 0;
		}
	}
	if (ok && r.status >= 200 && r.status < 300) {
		json_error_t jerr;
		json_t *res = tlbot_json_decode(r.body.data ? r.body.data : "{}",
		                                r.body.len ? r.body.len : 2, &jerr);

		answer = json_pack("{s:s, s:o}", "id", id, "result", res ? res : json_object());
	} else {
		answer = json_pack("{s:s, s:o}", "id", id, "error", error_from(&r, ok));
	}
	tlbot_buf_release(&r.body);
	tlbot_buf_release(&path);
	free(body);
	curl_free(er);
	curl_free(et);
	curl_free(ek);
	curl_free(eid);
	return answer;
}

static void *
request_thread(void *arg)
{
	struct conn *c = arg;

	pthread_mutex_lock(&gw.lock);
	for (;;) {
		struct req *q;
		json_t *answer;

		while (!c->closing && !stopping && c->req_head == NULL) {
			struct timespec ts;

			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += 1;
			pthread_cond_timedwait(&c->req_cond, &gw.lock, &ts);
		}
		if (c->closing || stopping)
			break;
		q = c->req_head;
		c->req_head = q->next;
		if (c->req_head == NULL)
			c->req_tail = NULL;
		c->nreqs--;
		pthread_mutex_unlock(&gw.lock);
		answer = run_request(c, q->obj);
		json_decref(q->obj);
		free(q);
		pthread_mutex_lock(&gw.lock);
		if (answer)
			queue_json_locked(c, answer);
	}
	pthread_mutex_unlock(&gw.lock);
	thread_exit(c);
	return NULL;
}

/* ---- libwebsockets side ---------------------------------------------------- */

static char *
urlarg(struct lws *wsi, const char *name)
{
	char buf[8192];
	const char *v = lws_get_urlarg_by_name(wsi, name, buf, (int)sizeof(buf));

	return v && *v ? strdup(v) : NULL;
}

/* Check the handshake and the token (upstream whoami). Returns the new
 * connection, or NULL with the refusal already answered. */
static struct conn *
admit(struct lws *wsi)
{
	char uri[512], auth[4096], *token = NULL;
	struct conn *c;
	struct up_resp r;
	json_error_t jerr;
	json_t *who;
	int ok;

	if (lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) <= 0 ||
	    strcmp(uri, STREAM_PATH) != 0) {
		lws_return_http_status(wsi, HTTP_STATUS_NOT_FOUND, NULL);
		return NULL;
	}
	pthread_mutex_lock(&gw.lock);
	ok = gw.nconns < gw.max_conns;
	pthread_mutex_unlock(&gw.lock);
	if (!ok) {
		log_warnx("refusing a connection: %d connections open (--max-connections)",
		          gw.max_conns);
		lws_return_http_status(wsi, HTTP_STATUS_SERVICE_UNAVAILABLE, NULL);
		return NULL;
	}
	if (lws_hdr_copy(wsi, auth, sizeof(auth), WSI_TOKEN_HTTP_AUTHORIZATION) > 7 &&
	    strncmp(auth, "Bearer ", 7) == 0)
		token = strdup(auth + 7);
	else
		token = urlarg(wsi, "access_token=");
	if (token == NULL) {
		lws_return_http_status(wsi, HTTP_STATUS_UNAUTHORIZED, NULL);
		return NULL;
	}
	tlbot_log_add_secret(token); /* bounded: the redactor keeps the first few */
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		free(token);
		return NULL;
	}
	c->token = token;
	c->refs = 1;
	pthread_cond_init(&c->req_cond, NULL);
	tlbot_buf_init(&c->rx, MAX_CLIENT_MESSAGE);
	lws_get_peer_simple(wsi, c->peer, sizeof(c->peer));
	ok = up_request(c, "GET", API "/account/whoami", NULL, 15000, &r) == 0;
	who = ok && r.status == 200
	              ? tlbot_json_decode(r.body.data ? r.body.data : "", r.body.len, &jerr)
	              : NULL;
	if (json_string_value(json_object_get(who, "user_id")))
		c->user_id = strdup(json_string_value(json_object_get(who, "user_id")));
	json_decref(who);
	tlbot_buf_release(&r.body);
	if (c->user_id == NULL) {
		log_info("refusing %s: the homeserver did not accept the token (HTTP %ld)", c->peer,
		         r.status);
		lws_return_http_status(
		        wsi, ok && r.status ? (unsigned)r.status : HTTP_STATUS_BAD_GATEWAY, NULL);
		conn_free(c);
		return NULL;
	}
	c->since = urlarg(wsi, "since=");
	c->filter = urlarg(wsi, "filter=");
	pthread_mutex_lock(&gw.lock);
	c->id = ++gw.next_id;
	pthread_mutex_unlock(&gw.lock);
	return c;
}

static void
on_client_message(struct conn *c, const char *text, size_t len)
{
	json_error_t jerr;
	json_t *rq = tlbot_json_decode(text, len, &jerr);
	const char *id = json_string_value(json_object_get(rq, "id"));
	const char *method = json_string_value(json_object_get(rq, "method"));

	pthread_mutex_lock(&gw.lock);
	if (!json_is_object(rq) || method == NULL) {
		queue_json_locked(c, json_pack("{s:o, s:{s:s, s:s, s:i}}", "id",
		                               id ? json_string(id) : json_null(), "error",
		                               "errcode", "M_BAD_JSON", "error",
		                               "expected {\"id\", \"method\", \"params\"}",
		                               "status", 400));
	} else if (strcmp(method, "ping") == 0) {
		queue_json_locked(c, json_pack("{s:o, s:{}}", "id",
		                               id ? json_string(id) : json_null(), "result"));
	} else if (id == NULL || *id == '\0') {
		queue_json_locked(c, json_pack("{s:n, s:{s:s, s:s, s:i}}", "id", "error", "errcode",
		                               "M_BAD_JSON", "error", "id (string) required",
		                               "status", 400));
	} else if (strcmp(method, "send") != 0 && strcmp(method, "state") != 0) {
		queue_json_locked(c, json_pack("{s:s, s:{s:s, s:s, s:i}}", "id", id, "error",
		                               "errcode", "M_UNRECOGNIZED", "error",
		                               "unknown method", "status", 400));
	} else if (c->nreqs >= MAX_QUEUED_REQS) {
		queue_json_locked(c, json_pack("{s:s, s:{s:s, s:s, s:i, s:i}}", "id", id, "error",
		                               "errcode", "M_LIMIT_EXCEEDED", "error",
		                               "too many requests in flight", "retry_after_ms",
		                               1000, "status", 429));
	} else {
		struct req *q = calloc(1, sizeof(*q));

		if (q) {
			q->obj = rq; /* handed over: no reference shared across threads */
			rq = NULL;
			if (c->req_tail)
				c->req_tail->next = q;
			else
				c->req_head = q;
			c->req_tail = q;
			c->nreqs++;
			pthread_cond_signal(&c->req_cond);
		}
	}
	pthread_mutex_unlock(&gw.lock);
	json_decref(rq);
}

static int
start_threads(struct conn *c)
{
	pthread_t t;
	pthread_attr_t attr;
	int rc = 0;

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_mutex_lock(&gw.lock);
	c->refs += 2;
	gw.nthreads += 2;
	pthread_mutex_unlock(&gw.lock);
	if (pthread_create(&t, &attr, sync_thread, c) != 0) {
		thread_exit(c);
		rc = -1;
	}
	if (pthread_create(&t, &attr, request_thread, c) != 0) {
		thread_exit(c);
		rc = -1;
	}
	pthread_attr_destroy(&attr);
	return rc;
}

/* The socket closed: unlink, tell the threads, drop the loop's reference. */
static void
conn_closed(struct conn *c)
{
	struct conn **pp;

	pthread_mutex_lock(&gw.lock);
	for (pp = &gw.conns; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			gw.nconns--;
			break;
		}
	c->wsi = NULL;
	c->closing = 1;
	c->abort = 1;
	pthread_cond_broadcast(&c->req_cond);
	log_info("conn %lu (%s, %s): closed", c->id, c->user_id, c->peer);
	conn_unref_locked(c);
	pthread_mutex_unlock(&gw.lock);
}

/* c's socket is writable: the next frame of the oldest queued message,
 * or the close a kick asked for. Returns 0, or -1 to close. */
static int
on_writeable(struct conn *c, struct lws *wsi)
{
	struct msg *m;
	size_t n;
	int flags, more;

	if (c == NULL)
		return -1;
	pthread_mutex_lock(&gw.lock);
	/* a kick closes after what was queued before it (the error that
	 * says why); a slow consumer's (2) at once */
	if (c->kick && (c->out_head == NULL || c->kick == 2)) {
		int code = c->close_code;
		char reason_text[64];

		snprintf(reason_text, sizeof(reason_text), "%s", c->close_reason);
		pthread_mutex_unlock(&gw.lock);
		lws_close_reason(wsi, (enum lws_close_status)code,
		                 (unsigned char *)reason_text, strlen(reason_text));
		return -1;
	}
	m = c->out_head;
	pthread_mutex_unlock(&gw.lock);
	if (m == NULL)
		return 0;
	/* one frame per writable callback: fair to other connections */
	{
		unsigned char frame[LWS_PRE + FRAME_BYTES];

		n = m->len - m->off > FRAME_BYTES ? FRAME_BYTES : m->len - m->off;
		flags = lws_write_ws_flags(LWS_WRITE_TEXT, m->off == 0,
		                           m->off + n == m->len);
		memcpy(frame + LWS_PRE, m->text + m->off, n);
		if (lws_write(wsi, frame + LWS_PRE, n, (enum lws_write_protocol)flags) <
		    (int)n)
			return -1;
	}
	pthread_mutex_lock(&gw.lock);
	m->off += n;
	if (m->off == m->len) {
		c->out_head = m->next;
		if (c->out_head == NULL)
			c->out_tail = NULL;
		c->out_bytes -= m->len;
		free(m->text);
		free(m);
	}
	more = c->out_head != NULL || c->kick;
	pthread_mutex_unlock(&gw.lock);
	if (more)
		lws_callback_on_writable(wsi);
	return 0;
}

static int
callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	struct pss *pss = user;
	struct conn *c = pss ? pss->c : NULL;

	switch (reason) {
	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
		pss->c = admit(wsi);
		return pss->c ? 0 : 1;
	case LWS_CALLBACK_ESTABLISHED:
		if (c == NULL)
			return -1;
		pthread_mutex_lock(&gw.lock);
		c->wsi = wsi;
		c->next = gw.conns;
		gw.conns = c;
		gw.nconns++;
		pthread_mutex_unlock(&gw.lock);
		c->started = 1;
		log_info("conn %lu (%s, %s): streaming %s", c->id, c->user_id, c->peer,
		         c->since ? "from the client's position" : "from the start (initial sync)");
		if (start_threads(c) != 0)
			return -1;
		break;
	case LWS_CALLBACK_RECEIVE:
		if (c == NULL)
			return -1;
		if (lws_is_first_fragment(wsi))
			tlbot_buf_reset(&c->rx);
		if (tlbot_buf_add(&c->rx, in, len) != 0) {
			lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE,
			                 (unsigned char *)"message too big", 15);
			return -1;
		}
		if (lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0) {
			on_client_message(c, c->rx.data ? c->rx.data : "", c->rx.len);
			tlbot_buf_reset(&c->rx);
		}
		break;
	case LWS_CALLBACK_SERVER_WRITEABLE:
		return on_writeable(c, wsi);
	case LWS_CALLBACK_EVENT_WAIT_CANCELLED: {
		struct conn *k;

		pthread_mutex_lock(&gw.lock);
		for (k = gw.conns; k; k = k->next) {
			if (k->wsi == NULL)
				continue;
			if (k->kick == 2) /* slow consumer: it may never be writable again */
				lws_set_timeout(k->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
			else if (k->out_head || k->kick)
				lws_callback_on_writable(k->wsi);
		}
		pthread_mutex_unlock(&gw.lock);
		break;
	}
	case LWS_CALLBACK_CLOSED:
		if (c && c->started) {
			pss->c = NULL;
			conn_closed(c);
		}
		break;
	case LWS_CALLBACK_WSI_DESTROY:
		if (c && !c->started) {
			/* admitted, but the upgrade never completed */
			pss->c = NULL;
			conn_free(c);
		} else if (c) {
			pss->c = NULL; /* closed without LWS_CALLBACK_CLOSED */
			conn_closed(c);
		}
		break;
	case LWS_CALLBACK_HTTP:
		/* plain HTTP (no upgrade) */
		lws_return_http_status(wsi, HTTP_STATUS_NOT_FOUND, NULL);
		return -1;
	default:
		break;
	}
	return 0;
}

static const struct lws_protocols protocols[] = {
        {"m.json", callback, sizeof(struct pss), 16 * 1024, 0, NULL, 0},
        {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void
on_tick(lws_sorted_usec_list_t *sul)
{
	if (!stopping)
		lws_sul_schedule(gw.ctx, 0, sul, on_tick, TICK_US);
}

static void
lws_log_emit(int level, const char *line)
{
	size_t n = strlen(line);

	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		n--;
	if (level & LLL_ERR)
		log_warnx("lws: %.*s", (int)n, line);
	else
		log_debug("lws: %.*s", (int)n, line);
}

static void
usage(FILE *f)
{
	fprintf(f,
	        "usage: tlbot-wsgateway --upstream URL [--listen HOST:PORT] [--tls-cert FILE\n"
	        "                       --tls-key FILE] [--ca-file FILE] [--max-connections N]\n"
	        "                       [--max-buffer-kb N] [--log-level LEVEL]\n"
	        "\n"
	        "Serves the Matrix WebSockets API draft (GET %s, subprotocol\n"
	        "m.json) in front of the homeserver at URL: each connection long-polls its /sync\n"
	        "and receives the batches as messages; send and state requests become REST calls.\n"
	        "\n"
	        "  --upstream URL        the homeserver's client API base, e.g. "
	        "http://127.0.0.1:8008\n"
	        "  --listen HOST:PORT    where to listen (default 127.0.0.1:8009)\n"
	        "  --tls-cert, --tls-key serve wss:// with this certificate and key (optional;\n"
	        "                        usually a reverse proxy terminates TLS)\n"
	        "  --ca-file FILE        CA bundle to verify an https upstream\n"
	        "  --max-connections N   concurrent streams (default 256)\n"
	        "  --max-buffer-kb N     unsent data per connection before it is disconnected as\n"
	        "                        a slow consumer (default 8192)\n"
	        "  --log-level LEVEL     error, warn, info (default) or debug\n",
	        STREAM_PATH);
}

/* --listen HOST:PORT (or [V6]:PORT) into gw. Returns 0, or -1 (said). */
static int
parse_listen(const char *listen_arg)
{
	const char *colon = strrchr(listen_arg, ':');
	char *end;
	long port;

	if (colon == NULL || colon == listen_arg) {
		fprintf(stderr, "tlbot-wsgateway: --listen wants HOST:PORT\n");
		return -1;
	}
	port = strtol(colon + 1, &end, 10);
	if (*end != '\0' || port <= 0 || port > 65535) {
		fprintf(stderr, "tlbot-wsgateway: bad port in --listen %s\n", listen_arg);
		return -1;
	}
	gw.listen_port = (int)port;
	gw.listen_host = strndup(listen_arg, (size_t)(colon - listen_arg));
	if (gw.listen_host[0] == '[') { /* [::1] */
		memmove(gw.listen_host, gw.listen_host + 1, strlen(gw.listen_host));
		gw.listen_host[strcspn(gw.listen_host, "]")] = '\0';
	}
	return 0;
}

/* The listening lws context in gw.ctx (fatal when it cannot listen). */
static void
listen_start(const char *listen_arg)
{
	struct lws_context_creation_info info;

	lws_set_log_level(LLL_ERR | LLL_WARN, lws_log_emit);
	memset(&info, 0, sizeof(info));
	info.port = gw.listen_port;
	info.iface = gw.listen_host;
	info.protocols = protocols;
	info.gid = -1;
	info.uid = -1;
	info.timeout_secs = 20;
	info.options = LWS_SERVER_OPTION_VALIDATE_UTF8;
	if (gw.tls_cert) {
		info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
		info.ssl_cert_filepath = gw.tls_cert;
		info.ssl_private_key_filepath = gw.tls_key;
	}
	gw.ctx = lws_create_context(&info);
	if (gw.ctx == NULL)
		fatalx("cannot listen on %s (see above)", listen_arg);
}

/* At shutdown (gw.lock held): tell every connection's threads to stop
 * (curl transfers abort) and wait up to 3 s for them. */
static void
stop_threads_locked(void)
{
	struct conn *k;
	int64_t deadline = tlbot_clock_mono_ms() + 3000;

	for (k = gw.conns; k; k = k->next) {
		k->closing = 1;
		k->abort = 1;
		pthread_cond_broadcast(&k->req_cond);
	}
	while (gw.nthreads > 0 && tlbot_clock_mono_ms() < deadline) {
		struct timespec ts;

		tlbot_clock_abs_in(&ts, 100);
		pthread_cond_timedwait(&gw.threads_cond, &gw.lock, &ts);
	}
	if (gw.nthreads > 0)
		log_warnx("%d connection threads still busy at exit", gw.nthreads);
}

/* The command line into gw, *listen_arg and *max_kb. Returns -1 to go on,
 * or the exit status (0 after --help, 64 on a usage error). */
static int
parse_args(int argc, char **argv, const char **listen_arg, long *max_kb)
{
	static const struct option opts[] = {
	        {"upstream", required_argument, NULL, 'u'},
	        {"listen", required_argument, NULL, 'l'},
	        {"tls-cert", required_argument, NULL, 'c'},
	        {"tls-key", required_argument, NULL, 'k'},
	        {"ca-file", required_argument, NULL, 'a'},
	        {"max-connections", required_argument, NULL, 'm'},
	        {"max-buffer-kb", required_argument, NULL, 'b'},
	        {"log-level", required_argument, NULL, 'L'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	enum tlbot_log_level lvl;
	int ch;

	gw.max_conns = 256;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'u':
			gw.upstream = strdup(optarg);
			break;
		case 'l':
			*listen_arg = optarg;
			break;
		case 'c':
			gw.tls_cert = optarg;
			break;
		case 'k':
			gw.tls_key = optarg;
			break;
		case 'a':
			gw.ca_file = optarg;
			break;
		case 'm':
			gw.max_conns = atoi(optarg);
			break;
		case 'b':
			*max_kb = atol(optarg);
			break;
		case 'L':
			if (tlbot_log_parse_level(optarg, &lvl) != 0) {
				fprintf(stderr, "tlbot-wsgateway: bad --log-level '%s'\n", optarg);
				return 64;
			}
			tlbot_log_set_level(lvl);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 64;
		}
	}
	if (gw.upstream == NULL)
		fprintf(stderr, "tlbot-wsgateway: --upstream URL is required\n");
	if (gw.upstream == NULL || optind < argc || gw.max_conns <= 0 || *max_kb <= 0 ||
	    (!gw.tls_cert != !gw.tls_key) ||
	    (strncmp(gw.upstream, "http://", 7) != 0 && strncmp(gw.upstream, "https://", 8) != 0)) {
		usage(stderr);
		return 64;
	}
	while (strlen(gw.upstream) > 8 && gw.upstream[strlen(gw.upstream) - 1] == '/')
		gw.upstream[strlen(gw.upstream) - 1] = '\0';
	gw.max_buffer = (size_t)*max_kb * 1024;
	if (parse_listen(*listen_arg) != 0)
		return 64;
	return -1;
}

int
main(int argc, char **argv)
{
	struct sigaction sa;
	const char *listen_arg = "127.0.0.1:8009";
	long max_kb = 8192;
	int rc = parse_args(argc, argv, &listen_arg, &max_kb);

	if (rc >= 0)
		return rc;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	pthread_mutex_init(&gw.lock, NULL);
	pthread_cond_init(&gw.threads_cond, NULL);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
		fatalx("cannot initialise libcurl");

	listen_start(listen_arg);
	log_info("tlbot-wsgateway %s: %s://%s:%d%s -> %s (max %d connections, %ld KiB each)",
	         TLBOT_VERSION, gw.tls_cert ? "wss" : "ws", gw.listen_host, gw.listen_port,
	         STREAM_PATH, gw.upstream, gw.max_conns, max_kb);
	printf("LISTENING %s://%s:%d\n", gw.tls_cert ? "wss" : "ws", gw.listen_host,
	       gw.listen_port);
	fflush(stdout);
	lws_sul_schedule(gw.ctx, 0, &gw.tick, on_tick, TICK_US);
	while (!stopping)
		if (lws_service(gw.ctx, 0) < 0)
			break;

	/* shutdown: stop the threads (curl transfers abort), then close sockets */
	log_info("stopping: closing %d connections", gw.nconns);
	pthread_mutex_lock(&gw.lock);
	stop_threads_locked();
	{
		struct lws_context *ctx = gw.ctx;

		gw.ctx = NULL;
		pthread_mutex_unlock(&gw.lock);
		lws_sul_cancel(&gw.tick);
		lws_context_destroy(ctx);
	}
	thread_curl_release(); /* the loop thread's (whoami at handshakes) */
	curl_global_cleanup();
	log_info("stopped cleanly");
	free(gw.upstream);
	free(gw.listen_host);
	return 0;
}
