/* The WebSocket transport over libwebsockets (see include/tlbot/ws.h).
 *
 * The lws loop runs in the receive-side thread: updates are applied with
 * tlbot_router_apply in the lws callback, so the store connection d->st
 * stays in one thread. A periodic timer (TICK_US) drives reconnects,
 * keepalive and the stop flag, so SIGTERM is seen within TICK_US.
 *
 * Worker requests: tlbot_ws_send queues a request under ws->lock and calls
 * lws_cancel_service(); the loop gets LWS_CALLBACK_EVENT_WAIT_CANCELLED,
 * asks for a writable callback and writes it; the answer, matched by id, is
 * stored in the request and ws->cond is signalled. When the connection goes
 * down every request still waiting is marked lost, and the worker falls back
 * to REST with the same txnId. */
#include <ctype.h>
#include <libwebsockets.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tlbot/buf.h"
#include "tlbot/clock.h"
#include "tlbot/daemon.h"
#include "tlbot/log.h"
#include "tlbot/metrics.h"
#include "tlbot/ws.h"

#define STREAM_PATH       "/_matrix/client/unstable/stream"
#define SUBPROTOCOL       "m.json"
#define TICK_US           (200 * LWS_US_PER_MS)
#define RECONNECT_BASE_MS 500
#define RECONNECT_CAP_MS  30000
#define TRIM_AFTER_BYTES  (1024 * 1024)

enum req_state { REQ_QUEUED, REQ_SENT, REQ_DONE, REQ_LOST };

struct ws_req {
	struct ws_req *next;
	const char *id; /* borrowed from the caller (the txnId) */
	char *text;     /* the request JSON (owned by the caller) */
	enum req_state state;
	json_t *answer; /* the response object (new reference) */
};

enum conn_state { CONN_IDLE, CONN_CONNECTING, CONN_UP };

struct tlbot_ws {
	struct tlbot_daemon *d;
	/* where to connect (fixed at tlbot_ws_new) */
	char *address;     /* host name or IP, no brackets */
	char *host_header; /* host[:port] */
	char *path_base;   /* absolute path of the stream endpoint */
	char *display;     /* ws[s]://host:port/path, never with a token */
	int port;
	int tls;
	int token_in_query;
	long ping_ms; /* silence after which the connection is dead */
	long reprobe_ms;
	int is_auto;

	/* shared with the worker, under lock */
	int sync_inited; /* lock and cond initialised */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct lws_context *ctx; /* NULL while the loop is not running */
	int up;
	struct ws_req *reqs; /* queued and sent requests, oldest first */

	/* lws thread only */
	struct lws *wsi;
	lws_sorted_usec_list_t tick;
	enum conn_state state;
	int64_t next_connect_ms, last_rx_ms, last_ping_ms;
	int attempt;
	int want_ping; /* 1: ping frame next, 2: ping request next */
	unsigned ping_seq;
	int refused; /* auto: the handshake was refused: fall back */
	char refused_why[160];
	int destroying;
	struct tlbot_buf rx;
	int rx_too_big;
	int apply_failures; /* consecutive failures to apply an update */
	char *since;        /* the position the current stream continues from */
	int since_refused;  /* refusals of since/filter in a row (tlbot_sync_refused) */
	long hs_status;     /* the HTTP status of a refused handshake, or 0 */
	int fresh_now;      /* the position was dropped: reconnect at once, fresh */
	char *auth_header;  /* "Bearer <token>" */
	char *path;         /* path + query of the current attempt (may hold the token) */
	unsigned char *tx;
	size_t txcap;
	const char *logged; /* transport last logged: "websocket" or "sync" */
};

static long
env_long(const char *name, long def, long min, long max)
{
	const char *v = getenv(name);
	char *end;
	long n;

	if (v == NULL || *v == '\0')
		return def;
	n = strtol(v, &end, 10);
	if (*end != '\0' || n < min || n > max) {
		log_warnx("ignoring %s=%s (expected %ld..%ld)", name, v, min, max);
		return def;
	}
	return n;
}

static char *
xstrndup(const char *s, size_t n)
{
	char *p = malloc(n + 1);

	if (p) {
		memcpy(p, s, n);
		p[n] = '\0';
	}
	return p;
}

/* Split a ws/wss/http/https URL into the transport's address fields. */
static int
parse_url(struct tlbot_ws *ws, const char *url)
{
	const char *p, *host, *hend, *path;
	struct tlbot_buf b;
	size_t hlen;

	if (strncmp(url, "wss://", 6) == 0 || strncmp(url, "https://", 8) == 0)
		ws->tls = 1;
	else if (strncmp(url, "ws://", 5) == 0 || strncmp(url, "http://", 7) == 0)
		ws->tls = 0;
	else
		return -1;
	p = strstr(url, "://") + 3;
	path = p + strcspn(p, "/?#");
	if (*p == '[') { /* [IPv6]:port */
		host = p + 1;
		hend = memchr(host, ']', (size_t)(path - host));
		if (hend == NULL)
			return -1;
		p = hend + 1;
	} else {
		host = p;
		hend = memchr(p, ':', (size_t)(path - p));
		if (hend == NULL)
			hend = path;
		p = hend;
	}
	hlen = (size_t)(hend - host);
	if (hlen == 0 || hlen > 253)
		return -1;
	ws->port = ws->tls ? 443 : 80;
	if (*p == ':') {
		char *end;
		long port = strtol(p + 1, &end, 10);

		if (end != path || port <= 0 || port > 65535)
			return -1;
		ws->port = (int)port;
	} else if (p != path) {
		return -1;
	}
	ws->address = xstrndup(host, hlen);
	tlbot_buf_init(&b, 512);
	if (memchr(host, ':', hlen))
		tlbot_buf_printf(&b, "[%s]", ws->address);
	else
		tlbot_buf_adds(&b, ws->address);
	if (ws->port != (ws->tls ? 443 : 80))
		tlbot_buf_printf(&b, ":%d", ws->port);
	ws->host_header = tlbot_buf_detach(&b);

	/* the path: a URL that already names a client API path is used as it
	 * is; otherwise it is a base and the stream path is appended */
	tlbot_buf_init(&b, 2048);
	{
		size_t plen = strcspn(path, "?#");

		while (plen > 0 && path[plen - 1] == '/')
			plen--;
		if (tlbot_buf_add(&b, path, plen) != 0)
			goto fail;
		if (strstr(tlbot_buf_str(&b), "/_matrix/client/") == NULL &&
		    tlbot_buf_adds(&b, STREAM_PATH) != 0)
			goto fail;
	}
	ws->path_base = tlbot_buf_detach(&b);
	tlbot_buf_init(&b, 4096);
	tlbot_buf_printf(&b, "%s://%s%s", ws->tls ? "wss" : "ws", ws->host_header, ws->path_base);
	ws->display = tlbot_buf_detach(&b);
	return ws->address && ws->host_header && ws->path_base && ws->display ? 0 : -1;
fail:
	tlbot_buf_release(&b);
	return -1;
}

struct tlbot_ws *
tlbot_ws_new(struct tlbot_daemon *d)
{
	struct tlbot_ws *ws = calloc(1, sizeof(*ws));
	const char *url = d->cfg->websocket_url ? d->cfg->websocket_url : d->base_url;
	struct tlbot_buf b;

	if (ws == NULL)
		return NULL;
	ws->d = d;
	if (parse_url(ws, url) != 0) {
		log_error("websocket: cannot use the URL %s (expected ws[s]://host[:port][/path])",
		          url);
		tlbot_ws_free(ws);
		return NULL;
	}
	/* From the configuration (websocket_ping_s, websocket_reprobe_s,
	 * websocket_token_in_query; TLBOT_WEBSOCKET_* in the environment); the
	 * short TLBOT_WS_* variables stay as overrides for the tests. */
	ws->ping_ms = env_long("TLBOT_WS_PING_S", d->cfg->websocket_ping_s, 1, 3600) * 1000;
	ws->reprobe_ms = env_long("TLBOT_WS_REPROBE_S", d->cfg->websocket_reprobe_s, 1, 86400) * 1000;
	ws->token_in_query = env_long("TLBOT_WS_TOKEN_IN_QUERY",
	                              d->cfg->websocket_token_in_query &&
	                                      strcmp(d->cfg->websocket_token_in_query, "on") == 0,
	                              0, 1) != 0;
	ws->is_auto = strcmp(d->cfg->transport, "auto") == 0;
	tlbot_buf_init(&b, 4096);
	if (tlbot_buf_printf(&b, "Bearer %s", d->token ? d->token : "") != 0) {
		tlbot_buf_release(&b);
		tlbot_ws_free(ws);
		return NULL;
	}
	ws->auth_header = tlbot_buf_detach(&b);
	tlbot_buf_init(&ws->rx, TLBOT_WS_MAX_MESSAGE);
	pthread_mutex_init(&ws->lock, NULL);
	pthread_cond_init(&ws->cond, NULL);
	ws->sync_inited = 1;
	return ws;
}

void
tlbot_ws_free(struct tlbot_ws *ws)
{
	if (ws == NULL)
		return;
	if (ws->sync_inited) {
		pthread_mutex_destroy(&ws->lock);
		pthread_cond_destroy(&ws->cond);
	}
	free(ws->address);
	free(ws->host_header);
	free(ws->path_base);
	free(ws->display);
	free(ws->auth_header);
	free(ws->since);
	free(ws->path);
	free(ws->tx);
	tlbot_buf_release(&ws->rx);
	free(ws);
}

int
tlbot_ws_connected(struct tlbot_ws *ws)
{
	int up;

	pthread_mutex_lock(&ws->lock);
	up = ws->up;
	pthread_mutex_unlock(&ws->lock);
	return up;
}

/* ---- lws thread ---------------------------------------------------------- */

static void
log_transport(struct tlbot_ws *ws, const char *which, const char *detail)
{
	if (ws->logged && strcmp(ws->logged, which) == 0) {
		log_debug("transport: still %s (%s)", which, detail);
		return;
	}
	ws->logged = which;
	log_info("transport: %s (%s)", which, detail);
}

/* Mark every waiting request lost (connection down). Under ws->lock. */
static void
lose_requests_locked(struct tlbot_ws *ws)
{
	struct ws_req *q;

	for (q = ws->reqs; q; q = q->next)
		if (q->state == REQ_QUEUED || q->state == REQ_SENT)
			q->state = REQ_LOST;
	pthread_cond_broadcast(&ws->cond);
	if (ws->reqs)
		tlbot_daemon_wake(ws->d); /* a worker polling (tlbot_ws_send_poll) */
}

static void on_tick(lws_sorted_usec_list_t *sul);

/* The connection attempt failed or the connection closed. */
static void
conn_down(struct tlbot_ws *ws, const char *why)
{
	int was_up = ws->state == CONN_UP;
	long wait;

	if (ws->state == CONN_IDLE)
		return;
	ws->state = CONN_IDLE;
	ws->wsi = NULL;
	ws->want_ping = 0;
	tlbot_buf_reset(&ws->rx);
	ws->rx_too_big = 0;
	pthread_mutex_lock(&ws->lock);
	ws->up = 0;
	lose_requests_locked(ws);
	pthread_mutex_unlock(&ws->lock);
	if (ws->destroying || *ws->d->stop)
		return;
	if (!was_up && why && strncmp(why, "HS:", 3) == 0 && strcmp(why, "HS: OOM") != 0) {
		/* the server answered, but not with an upgrade: refused */
		if (ws->is_auto) {
			snprintf(ws->refused_why, sizeof(ws->refused_why), "%s", why);
			ws->refused = 1;
			return;
		}
		/* 400: the server refuses the since or the filter (as /sync
		 * does): the policy sync.c follows, then reconnect */
		if (ws->hs_status == 400)
			ws->fresh_now = tlbot_sync_refused(ws->d, "websocket", &ws->since_refused,
			                                   ws->since != NULL, "the stream handshake",
			                                   "was refused", ws->hs_status) == 1;
	}
	/* a fresh start goes at once, as sync.c's does: what is sent while
	 * it waits would come as history, not answered */
	wait = ws->fresh_now ? 0
	                     : tlbot_backoff_ms(ws->attempt++, RECONNECT_BASE_MS, RECONNECT_CAP_MS);
	ws->fresh_now = 0;
	ws->next_connect_ms = tlbot_clock_mono_ms() + wait;
	if (wait == 0 && ws->ctx)
		lws_sul_schedule(ws->ctx, 0, &ws->tick, on_tick, 1); /* the next tick now */
	if (was_up)
		tlbot_metrics_reconnect();
	if (was_up)
		log_warnx("websocket: connection to %s lost (%s); reconnecting in %ld ms from the "
		          "stored position",
		          ws->display, why ? why : "closed", wait);
	else
		log_warnx("websocket: cannot connect to %s (%s)%s; retrying in %ld ms", ws->display,
		          why ? why : "failed",
		          why && strstr(why, "SSL")
		                  ? " (TLS: is the certificate valid for this host? "
		                    "set ca_file for a private CA)"
		                  : "",
		          wait);
}

static void
conn_start(struct tlbot_ws *ws, struct lws_context *ctx)
{
	struct tlbot_daemon *d = ws->d;
	struct lws_client_connect_info ci;
	struct tlbot_buf b;
	char *e;

	free(ws->since);
	ws->since = tlbot_sync_start_position(d);
	tlbot_buf_init(&b, 64 * 1024);
	tlbot_buf_adds(&b, ws->path_base);
	tlbot_buf_addc(&b, '?');
	if (ws->since) {
		e = tlbot_http_escape(ws->since);
		tlbot_buf_printf(&b, "since=%s&", e ? e : "");
		free(e);
	}
	if (d->filter) {
		e = tlbot_http_escape(d->filter);
		tlbot_buf_printf(&b, "filter=%s&", e ? e : "");
		free(e);
	}
	if (ws->token_in_query) {
		/* servers that want the draft's access_token parameter; the
		 * token is registered with the log redactor */
		e = tlbot_http_escape(d->token ? d->token : "");
		tlbot_buf_printf(&b, "access_token=%s&", e ? e : "");
		free(e);
	}
	b.data[--b.len] = '\0'; /* the trailing '&' or '?' */
	free(ws->path);
	ws->path = tlbot_buf_detach(&b);
	if (ws->path == NULL) {
		log_error("websocket: out of memory building the handshake");
		ws->next_connect_ms = tlbot_clock_mono_ms() + 1000;
		return;
	}

	memset(&ci, 0, sizeof(ci));
	ci.context = ctx;
	ci.address = ws->address;
	ci.port = ws->port;
	ci.ssl_connection = ws->tls ? LCCSCF_USE_SSL : 0;
	ci.path = ws->path;
	ci.host = ws->host_header;
	ci.origin = ws->host_header;
	ci.protocol = SUBPROTOCOL;
	ci.local_protocol_name = SUBPROTOCOL;
	ws->state = CONN_CONNECTING;
	log_debug("websocket: connecting to %s (%s)", ws->display,
	          ws->since ? "from the stored position" : "fresh");
	ws->wsi = lws_client_connect_via_info(&ci);
	if (ws->wsi == NULL && ws->state == CONN_CONNECTING)
		conn_down(ws, "cannot start the connection");
}

static int
write_text(struct tlbot_ws *ws, struct lws *wsi, const char *text, size_t len)
{
	if (ws->txcap < LWS_PRE + len) {
		unsigned char *n = realloc(ws->tx, LWS_PRE + len);

		if (n == NULL)
			return -1;
		ws->tx = n;
		ws->txcap = LWS_PRE + len;
	}
	memcpy(ws->tx + LWS_PRE, text, len);
	return lws_write(wsi, ws->tx + LWS_PRE, len, LWS_WRITE_TEXT) < (int)len ? -1 : 0;
}

/* An answer {"id","result"|"error"} to one of our requests. */
static void
on_answer(struct tlbot_ws *ws, const char *id, json_t *msg)
{
	struct ws_req *q;

	if (strncmp(id, "ping-", 5) == 0)
		return;
	pthread_mutex_lock(&ws->lock);
	for (q = ws->reqs; q; q = q->next)
		if (q->state == REQ_SENT && strcmp(q->id, id) == 0)
			break;
	if (q) {
		/* a copy: jansson reference counts are not shared across threads */
		q->answer = json_deep_copy(msg);
		q->state = REQ_DONE;
		pthread_cond_broadcast(&ws->cond);
	}
	pthread_mutex_unlock(&ws->lock);
	if (q)
		tlbot_daemon_wake(ws->d); /* a worker polling (tlbot_ws_send_poll) */
	if (q == NULL)
		log_debug("websocket: answer to unknown request %s ignored", id);
}

/* A fresh start's first update: a chunk of rooms at a time, as /sync's
 * first sync (never one tree of every room). Returns 0 (applied), 1 (not
 * a sync batch: decode it as usual) or -1 (close and start again). */
static int
on_first_update(struct tlbot_ws *ws, const char *text, size_t len)
{
	struct tlbot_daemon *d = ws->d;
	char *first = NULL;
	int rc = tlbot_sync_first_apply(d, text, len, &first);

	if (rc < 0) {
		log_error("websocket: could not apply the first update (see above); reconnecting to "
		          "start again");
		return -1;
	}
	if (rc > 0)
		return 1;
	log_debug("websocket: first update (%zu bytes) -> %s, applied a chunk of rooms at a time",
	          len, first);
	ws->since = first;
	ws->attempt = 0;
	ws->since_refused = 0;
	ws->apply_failures = 0;
	__atomic_add_fetch(&d->batches_applied, 1, __ATOMIC_RELEASE);
	tlbot_daemon_wake(d);
	return 0;
}

/* One complete message. Returns 0, or -1 to close the connection. */
static int
on_message(struct tlbot_ws *ws, const char *text, size_t len)
{
	struct tlbot_daemon *d = ws->d;
	json_error_t jerr;
	json_t *msg, *batch;
	const char *id, *next, *method;

	if (ws->since == NULL) {
		int rc = on_first_update(ws, text, len);

		if (rc <= 0)
			return rc;
	}
	msg = tlbot_json_decode(text, len, &jerr);
	if (!json_is_object(msg)) {
		log_warnx("websocket: ignoring a message that is not a JSON object (%s)",
		          jerr.text);
		json_decref(msg);
		return 0;
	}
	id = json_string_value(json_object_get(msg, "id"));
	if (id && (json_object_get(msg, "result") || json_object_get(msg, "error"))) {
		on_answer(ws, id, msg);
		json_decref(msg);
		return 0;
	}
	batch = msg;
	method = json_string_value(json_object_get(msg, "method"));
	if (method && strcmp(method, "sync") == 0 && json_is_object(json_object_get(msg, "params")))
		batch = json_object_get(msg, "params");
	next = json_string_value(json_object_get(batch, "next_batch"));
	if (next == NULL) {
		const json_t *err = json_object_get(msg, "error");
		const char *errcode = json_string_value(json_object_get(err, "errcode"));

		if (errcode) {
			const char *etext = json_string_value(json_object_get(err, "error"));

			log_warnx("websocket: the server reported %s: %s", errcode,
			          etext ? etext : "");
			if (strcmp(errcode, "M_UNKNOWN_TOKEN") == 0) {
				log_error("websocket: the homeserver rejected the access token "
				          "(M_UNKNOWN_TOKEN); restart tlbot to log in again, or "
				          "give it "
				          "a new access token");
				tlbot_daemon_fail(d, 2);
			} else if (json_integer_value(json_object_get(err, "status")) == 400) {
				/* a gateway's upstream /sync refused the since or the
				 * filter: the policy sync.c follows, then reconnect */
				ws->fresh_now = tlbot_sync_refused(d, "websocket", &ws->since_refused,
				                                   ws->since != NULL, errcode,
				                                   etext ? etext : "", 400) == 1;
				json_decref(msg);
				return -1;
			}
		} else {
			log_debug("websocket: ignoring a message without next_batch");
		}
		json_decref(msg);
		return 0;
	}
	log_debug("websocket: update from %s to %s (%zu bytes)",
	          ws->since ? ws->since : "the start", next, len);
	/* the policy both transports share (tlbot_daemon_apply): after
	 * repeated failures at the same update (it comes again after the
	 * reconnect), its events one by one */
	if (tlbot_daemon_apply(d, &ws->apply_failures, "websocket", batch, &ws->since) != 0) {
		log_warnx("websocket: reconnecting from the stored position");
		json_decref(msg);
		return -1;
	}
	ws->attempt = 0;
	ws->since_refused = 0;
	json_decref(msg);
	return 0;
}

/* A fragment of a message arrived; a whole message is handled. Returns 0,
 * or -1 to close the connection. */
static int
on_receive(struct tlbot_ws *ws, struct lws *wsi, const void *in, size_t len)
{
	ws->last_rx_ms = tlbot_clock_mono_ms();
	if (lws_is_first_fragment(wsi)) {
		tlbot_buf_reset(&ws->rx);
		ws->rx_too_big = 0;
	}
	if (!ws->rx_too_big && tlbot_buf_add(&ws->rx, in, len) != 0) {
		log_error("websocket: a message exceeds %u bytes; dropping the connection",
		          TLBOT_WS_MAX_MESSAGE);
		ws->rx_too_big = 1;
		return -1;
	}
	if (lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0) {
		int rc = on_message(ws, ws->rx.data ? ws->rx.data : "", ws->rx.len);

		if (ws->rx.alloc > TRIM_AFTER_BYTES) {
			/* a large update (a first sync in many rooms): give the
			 * buffer and the freed JSON tree back, as sync.c does */
			tlbot_buf_release(&ws->rx);
			tlbot_buf_init(&ws->rx, TLBOT_WS_MAX_MESSAGE);
			tlbot_daemon_trim();
		}
		tlbot_buf_reset(&ws->rx);
		if (rc != 0)
			return -1;
	}
	return 0;
}

/* The connection is writable: a ping (control frame, then the ping
 * method), or the oldest queued request. Returns 0, or -1 to close. */
static int
on_writeable(struct tlbot_ws *ws, struct lws *wsi)
{
	struct ws_req *q;
	int more = 0, rc = 0;

	if (ws->want_ping == 1) {
		unsigned char buf[LWS_PRE + 1];

		ws->want_ping = 2;
		lws_callback_on_writable(wsi);
		return lws_write(wsi, buf + LWS_PRE, 0, LWS_WRITE_PING) < 0 ? -1 : 0;
	}
	if (ws->want_ping == 2) {
		char text[64];
		int n = snprintf(text, sizeof(text),
		                 "{\"id\":\"ping-%u\",\"method\":\"ping\"}",
		                 ++ws->ping_seq);

		ws->want_ping = 0;
		lws_callback_on_writable(wsi);
		return write_text(ws, wsi, text, (size_t)n);
	}
	pthread_mutex_lock(&ws->lock);
	for (q = ws->reqs; q; q = q->next)
		if (q->state == REQ_QUEUED)
			break;
	if (q) {
		size_t n = strlen(q->text);

		/* copy under the lock: the worker may give up on q */
		if (ws->txcap < LWS_PRE + n) {
			unsigned char *t = realloc(ws->tx, LWS_PRE + n);

			if (t == NULL) {
				pthread_mutex_unlock(&ws->lock);
				return -1;
			}
			ws->tx = t;
			ws->txcap = LWS_PRE + n;
		}
		memcpy(ws->tx + LWS_PRE, q->text, n);
		q->state = REQ_SENT;
		for (q = q->next; q; q = q->next)
			if (q->state == REQ_QUEUED)
				more = 1;
		pthread_mutex_unlock(&ws->lock);
		rc = lws_write(wsi, ws->tx + LWS_PRE, n, LWS_WRITE_TEXT) < (int)n ? -1 : 0;
	} else {
		pthread_mutex_unlock(&ws->lock);
	}
	if (more)
		lws_callback_on_writable(wsi);
	return rc;
}

static int
callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	struct lws_context *ctx = lws_get_context(wsi);
	struct tlbot_ws *ws = ctx ? lws_context_user(ctx) : NULL;

	if (ws == NULL)
		return 0;
	switch (reason) {
	case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER:
		if (!ws->token_in_query) {
			unsigned char **p = in, *end = *p + len;

			if (lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_AUTHORIZATION,
			                                 (unsigned char *)ws->auth_header,
			                                 (int)strlen(ws->auth_header), p, end))
				return -1;
		}
		break;
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
		if (wsi == ws->wsi || ws->wsi == NULL) {
			ws->hs_status = (long)lws_http_client_http_response(wsi);
			conn_down(ws, in ? (const char *)in : "connection error");
			ws->hs_status = 0;
		}
		break;
	case LWS_CALLBACK_CLIENT_ESTABLISHED:
		ws->wsi = wsi;
		ws->state = CONN_UP;
		ws->last_rx_ms = ws->last_ping_ms = tlbot_clock_mono_ms();
		log_transport(ws, "websocket", ws->display);
		tlbot_metrics_transport("websocket");
		pthread_mutex_lock(&ws->lock);
		ws->up = 1;
		pthread_mutex_unlock(&ws->lock);
		break;
	case LWS_CALLBACK_CLIENT_RECEIVE:
		return on_receive(ws, wsi, in, len);
	case LWS_CALLBACK_CLIENT_RECEIVE_PONG:
		ws->last_rx_ms = tlbot_clock_mono_ms();
		tlbot_metrics_sync_ok(); /* the stream is alive, just quiet */
		break;
	case LWS_CALLBACK_CLIENT_WRITEABLE:
		return on_writeable(ws, wsi);
	case LWS_CALLBACK_EVENT_WAIT_CANCELLED: {
		/* the worker queued a request */
		int queued = 0;
		struct ws_req *q;

		pthread_mutex_lock(&ws->lock);
		for (q = ws->reqs; q; q = q->next)
			if (q->state == REQ_QUEUED)
				queued = 1;
		pthread_mutex_unlock(&ws->lock);
		if (queued && ws->state == CONN_UP && ws->wsi)
			lws_callback_on_writable(ws->wsi);
		break;
	}
	case LWS_CALLBACK_CLIENT_CLOSED:
		if (wsi == ws->wsi)
			conn_down(ws, "closed by the server or the network");
		break;
	case LWS_CALLBACK_WSI_DESTROY:
		if (wsi == ws->wsi)
			conn_down(ws, "connection closed");
		break;
	default:
		break;
	}
	(void)user;
	return 0;
}

static const struct lws_protocols protocols[] = {
        {SUBPROTOCOL, callback, 0, 16 * 1024, 0, NULL, 0},
        {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* The timer: stop flag, reconnects, keepalive. */
static void
on_tick(lws_sorted_usec_list_t *sul)
{
	struct tlbot_ws *ws = lws_container_of(sul, struct tlbot_ws, tick);
	struct lws_context *ctx = ws->ctx;
	int64_t now = tlbot_clock_mono_ms();

	if (*ws->d->stop || ws->refused)
		return; /* the loop ends */
	if (ws->state == CONN_UP && ws->wsi) {
		long ping_every = ws->ping_ms / 3 > 0 ? ws->ping_ms / 3 : 1;

		if (now - ws->last_rx_ms >= ws->ping_ms) {
			struct lws *dead = ws->wsi;

			log_warnx(
			        "websocket: nothing received from %s for %ld s: the connection is "
			        "dead",
			        ws->display, ws->ping_ms / 1000);
			conn_down(ws, "keepalive timeout");
			lws_set_timeout(dead, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
		} else if (now - ws->last_rx_ms >= ping_every &&
		           now - ws->last_ping_ms >= ping_every) {
			ws->last_ping_ms = now;
			ws->want_ping = 1;
			lws_callback_on_writable(ws->wsi);
		}
	} else if (ws->state == CONN_IDLE && now >= ws->next_connect_ms) {
		conn_start(ws, ctx);
	}
	lws_sul_schedule(ctx, 0, &ws->tick, on_tick, TICK_US);
}

static void
lws_log_emit(int level, const char *line)
{
	size_t n = strlen(line);

	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		n--;
	log_debug("lws: %.*s", (int)n, line);
	(void)level;
}

/* Run the stream until stopping (returns 0) or, in auto mode, until the
 * handshake is refused (returns 1). */
static int
ws_loop(struct tlbot_ws *ws)
{
	struct tlbot_daemon *d = ws->d;
	struct lws_context_creation_info info;
	struct lws_context *ctx;

	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = protocols;
	info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
	info.gid = -1;
	info.uid = -1;
	info.user = ws;
	info.timeout_secs = 10;
	info.client_ssl_ca_filepath = d->cfg->ca_file;
	lws_set_log_level(tlbot_log_get_level() >= TLBOT_LOG_DEBUG ? LLL_ERR | LLL_WARN : 0,
	                  lws_log_emit);
	ctx = lws_create_context(&info);
	if (ctx == NULL) {
		log_error("websocket: cannot create the libwebsockets context; retrying in 5 s");
		tlbot_daemon_sleep(d, 5000);
		return 0;
	}
	ws->refused = 0;
	ws->destroying = 0;
	ws->state = CONN_IDLE;
	ws->next_connect_ms = 0;
	ws->attempt = 0;
	pthread_mutex_lock(&ws->lock);
	ws->ctx = ctx;
	pthread_mutex_unlock(&ws->lock);
	lws_sul_schedule(ctx, 0, &ws->tick, on_tick, 1);
	while (!*d->stop && !ws->refused)
		if (lws_service(ctx, 0) < 0)
			break;
	pthread_mutex_lock(&ws->lock);
	ws->ctx = NULL;
	ws->up = 0;
	lose_requests_locked(ws);
	pthread_mutex_unlock(&ws->lock);
	ws->destroying = 1;
	lws_sul_cancel(&ws->tick);
	lws_context_destroy(ctx);
	ws->state = CONN_IDLE;
	ws->wsi = NULL;
	return !*d->stop && ws->refused;
}

int
tlbot_ws_transport_run(struct tlbot_daemon *d)
{
	struct tlbot_ws *ws = d->ws;

	tlbot_sync_prepare(d);
	log_info("websocket: transport %s, stream %s", d->cfg->transport, ws->display);
	while (!*d->stop) {
		char why[256];

		if (!ws_loop(ws))
			continue; /* stopping, or the context failed and we retry */
		snprintf(why, sizeof(why),
		         "the WebSocket handshake at %s was refused: %s; "
		         "re-probing every %ld s",
		         ws->display, ws->refused_why, ws->reprobe_ms / 1000);
		log_transport(ws, "sync", why);
		d->sync_until_ms = tlbot_clock_mono_ms() + ws->reprobe_ms;
		tlbot_sync_run(d);
		d->sync_until_ms = 0;
		if (!*d->stop)
			log_debug("websocket: re-probing %s", ws->display);
	}
	return 0;
}

/* ---- worker side ---------------------------------------------------------- */

static void
unlink_req_locked(struct tlbot_ws *ws, struct ws_req *req)
{
	struct ws_req **pp;

	for (pp = &ws->reqs; *pp; pp = &(*pp)->next)
		if (*pp == req) {
			*pp = req->next;
			break;
		}
}

static long
status_for(const char *errcode)
{
	static const struct {
		const char *code;
		long status;
	} map[] = {
	        {"M_LIMIT_EXCEEDED", 429}, {"M_FORBIDDEN", 403},     {"M_NOT_FOUND", 404},
	        {"M_UNKNOWN_TOKEN", 401},  {"M_MISSING_TOKEN", 401}, {"M_BAD_JSON", 400},
	        {"M_NOT_JSON", 400},       {"M_INVALID_PARAM", 400}, {"M_MISSING_PARAM", 400},
	        {"M_TOO_LARGE", 413},      {"M_UNRECOGNIZED", 400},
	};
	size_t i;

	for (i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(map[i].code, errcode) == 0)
			return map[i].status;
	return 500; /* M_UNKNOWN and the rest: retried, as a 5xx would be */
}

/* A send over the socket in flight (tlbot_ws_send_start). */
struct tlbot_ws_req {
	struct ws_req q;
	char *id;         /* the txnId (q.id points here) */
	int64_t deadline; /* monotonic ms */
};

struct tlbot_ws_req *
tlbot_ws_send_start(struct tlbot_ws *ws, const char *room_id, const char *event_type,
                    const char *txn_id, const char *content_json)
{
	struct tlbot_ws_req *req;
	json_error_t jerr;
	json_t *content, *msg;

	if (!tlbot_ws_connected(ws))
		return NULL;
	content = json_loads(content_json ? content_json : "{}", 0, &jerr);
	if (content == NULL)
		return NULL; /* let REST report it */
	msg = json_pack("{s:s, s:s, s:{s:s, s:s, s:o}}", "id", txn_id, "method", "send", "params",
	                "room_id", room_id, "event_type", event_type, "content", content);
	req = calloc(1, sizeof(*req));
	if (req == NULL || (req->id = strdup(txn_id)) == NULL ||
	    (req->q.text = msg ? json_dumps(msg, JSON_COMPACT) : NULL) == NULL) {
		json_decref(msg);
		if (req)
			free(req->id);
		free(req);
		return NULL;
	}
	json_decref(msg);
	req->q.id = req->id;
	req->q.state = REQ_QUEUED;
	req->deadline = tlbot_clock_mono_ms() + TLBOT_WS_SEND_TIMEOUT_MS;

	pthread_mutex_lock(&ws->lock);
	if (!ws->up || ws->ctx == NULL) {
		pthread_mutex_unlock(&ws->lock);
		free(req->q.text);
		free(req->id);
		free(req);
		return NULL;
	}
	{
		struct ws_req **pp = &ws->reqs;

		while (*pp)
			pp = &(*pp)->next;
		*pp = &req->q;
	}
	lws_cancel_service(ws->ctx);
	pthread_mutex_unlock(&ws->lock);
	return req;
}

static void
req_free(struct tlbot_ws_req *req)
{
	json_decref(req->q.answer);
	free(req->q.text);
	free(req->id);
	free(req);
}

void
tlbot_ws_send_cancel(struct tlbot_ws *ws, struct tlbot_ws_req *req)
{
	pthread_mutex_lock(&ws->lock);
	unlink_req_locked(ws, &req->q);
	pthread_mutex_unlock(&ws->lock);
	req_free(req);
}

long
tlbot_ws_send_wait_ms(const struct tlbot_ws_req *req)
{
	int64_t left = req->deadline - tlbot_clock_mono_ms();

	return left > 0 ? (long)left : 0;
}

int
tlbot_ws_send_poll(struct tlbot_ws *ws, struct tlbot_ws_req *req, char **event_id,
                   struct tlbot_http_resp *r, enum tlbot_err *e)
{
	const char *txn_id = req->id;
	enum req_state state;
	json_t *err;

	*event_id = NULL;
	pthread_mutex_lock(&ws->lock);
	state = req->q.state;
	if ((state == REQ_QUEUED || state == REQ_SENT) && tlbot_clock_mono_ms() < req->deadline) {
		pthread_mutex_unlock(&ws->lock);
		return 2;
	}
	unlink_req_locked(ws, &req->q);
	pthread_mutex_unlock(&ws->lock);

	if (state == REQ_LOST) {
		log_info("outbox %s: the WebSocket went down during the send; sending over REST "
		         "with the same txnId",
		         txn_id);
		req_free(req);
		return 1;
	}
	if (state != REQ_DONE) {
		log_warnx("outbox %s: no answer over the WebSocket within %d ms; sending over REST "
		          "with the same txnId",
		          txn_id, TLBOT_WS_SEND_TIMEOUT_MS);
		req_free(req);
		return 1;
	}
	err = json_object_get(req->q.answer, "error");
	if (json_is_object(err)) {
		const char *errcode = json_string_value(json_object_get(err, "errcode"));
		const char *error = json_string_value(json_object_get(err, "error"));
		json_t *ra = json_object_get(err, "retry_after_ms");
		json_t *st = json_object_get(err, "status");

		snprintf(r->errcode, sizeof(r->errcode), "%s", errcode ? errcode : "M_UNKNOWN");
		snprintf(r->error, sizeof(r->error), "%s",
		         error ? error : "error over the WebSocket");
		r->status =
		        json_is_integer(st) ? (long)json_integer_value(st) : status_for(r->errcode);
		r->retry_after_ms = json_is_integer(ra) ? (long)json_integer_value(ra) : -1;
		*e = TLBOT_ERR_HTTP;
	} else {
		const char *id = json_string_value(
		        json_object_get(json_object_get(req->q.answer, "result"), "event_id"));

		r->status = 200;
		*event_id = id ? strdup(id) : NULL;
		*e = TLBOT_OK;
	}
	req_free(req);
	return 0;
}

int
tlbot_ws_send(struct tlbot_ws *ws, const char *room_id, const char *event_type, const char *txn_id,
              const char *content_json, char **event_id, struct tlbot_http_resp *r,
              enum tlbot_err *e)
{
	struct tlbot_ws_req *req = tlbot_ws_send_start(ws, room_id, event_type, txn_id, content_json);
	int rc;

	*event_id = NULL;
	if (req == NULL)
		return 1;
	pthread_mutex_lock(&ws->lock);
	while ((req->q.state == REQ_QUEUED || req->q.state == REQ_SENT) &&
	       tlbot_clock_mono_ms() < req->deadline && !*ws->d->stop) {
		struct timespec ts;

		tlbot_clock_abs_in(&ts, 100);
		pthread_cond_timedwait(&ws->cond, &ws->lock, &ts);
	}
	pthread_mutex_unlock(&ws->lock);
	if (*ws->d->stop) {
		tlbot_ws_send_cancel(ws, req);
		return -1;
	}
	rc = tlbot_ws_send_poll(ws, req, event_id, r, e);
	return rc == 2 ? 1 : rc;
}
