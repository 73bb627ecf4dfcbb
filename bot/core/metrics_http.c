/* The health and metrics listener: /healthz and /metrics over HTTP, served
 * by libwebsockets' own HTTP server in a context and thread of its own (not
 * the WebSocket client's), with its own read-only use of the database. Off
 * unless metrics_listen is set; a bare port listens on 127.0.0.1 only. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <libwebsockets.h>

#include "tlbot/command.h"
#include "tlbot/log.h"
#include "tlbot/metrics.h"
#include "tlbot/metrics_http.h"
#include "tlbot/store.h"

#define BODY_MAX (1024 * 1024)

struct tlbot_metrics_server {
	const struct tlbot_config *cfg;
	struct tlbot_store st;
	int st_open;
	struct lws_context *ctx;
	pthread_t thread;
	volatile int stopping;
	char iface[128];
	int port;
};

/* One HTTP transaction: the answer, prepared in LWS_CALLBACK_HTTP and
 * written when the socket is writable. */
struct pss {
	unsigned char *buf; /* LWS_PRE bytes, then the body */
	size_t len;
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

/* The single number sql answers, or -1 (no such table, an error). */
static long long
count(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *s = NULL;
	long long n = -1;

	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
		n = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return n;
}

/* Read the database gauges; unknown ones stay -1. */
static void
read_store(struct tlbot_metrics_server *srv, struct tlbot_metrics_store *m)
{
	sqlite3_stmt *s;
	int64_t rooms;

	m->outbox_depth = m->outbox_oldest_age_s = m->rooms = -1;
	m->crypto_olm = m->crypto_megolm_in = m->crypto_megolm_out = m->crypto_pending = -1;
	m->transport_config = srv->cfg->transport;
	m->db_bytes = file_size(srv->cfg->database, "");
	m->wal_bytes = file_size(srv->cfg->database, "-wal");
	if (!srv->st_open) {
		if (tlbot_store_open(&srv->st, srv->cfg->database, 0) != 0)
			return;
		srv->st_open = 1;
	}
	/* the core's own read-only connection (tlbot_db_* is the commands' API) */
	s = NULL;
	if (sqlite3_prepare_v2(srv->st.db,
	                       "SELECT COUNT(*), IFNULL(MIN(created_at), 0) FROM outbox"
	                       " WHERE state = 'pending'",
	                       -1, &s, NULL) == SQLITE_OK &&
	    sqlite3_step(s) == SQLITE_ROW) {
		long long oldest = sqlite3_column_int64(s, 1), now = (long long)time(NULL);

		m->outbox_depth = sqlite3_column_int64(s, 0);
		m->outbox_oldest_age_s = oldest > 0 && now > oldest ? now - oldest : 0;
	}
	sqlite3_finalize(s);
	s = NULL;
	if (sqlite3_prepare_v2(srv->st.db, "SELECT COUNT(*) FROM rooms WHERE membership = 'join'",
	                       -1, &s, NULL) == SQLITE_OK &&
	    sqlite3_step(s) == SQLITE_ROW) {
		rooms = sqlite3_column_int64(s, 0);
		m->rooms = rooms;
	}
	sqlite3_finalize(s);
	/* encryption (bot/crypto/): its tables exist once it has run */
	m->crypto_olm = count(srv->st.db, "SELECT COUNT(*) FROM crypto_olm_sessions");
	m->crypto_megolm_in = count(srv->st.db, "SELECT COUNT(*) FROM crypto_megolm_in");
	m->crypto_megolm_out = count(srv->st.db, "SELECT COUNT(*) FROM crypto_megolm_out");
	m->crypto_pending = count(srv->st.db, "SELECT COUNT(*) FROM crypto_pending");
}

/* Build the answer for uri into p. Returns the HTTP status. */
static unsigned
answer(struct tlbot_metrics_server *srv, const char *uri, int is_get, struct tlbot_buf *body,
       const char **ctype)
{
	struct tlbot_metrics_store m;
	char reason[256];

	*ctype = "text/plain; charset=utf-8";
	if (!is_get) {
		tlbot_buf_adds(body, "only GET\n");
		return HTTP_STATUS_METHOD_NOT_ALLOWED;
	}
	if (strcmp(uri, "/healthz") == 0) {
		int bad;

		read_store(srv, &m);
		bad = tlbot_metrics_health(&m, srv->cfg->health_max_sync_age_s,
		                           srv->cfg->health_max_outbox_age_s, reason,
		                           sizeof(reason));
		tlbot_buf_printf(body, "%s\n", reason);
		return bad ? HTTP_STATUS_SERVICE_UNAVAILABLE : HTTP_STATUS_OK;
	}
	if (strcmp(uri, "/metrics") == 0) {
		read_store(srv, &m);
		*ctype = "text/plain; version=0.0.4; charset=utf-8";
		if (tlbot_metrics_render(body, &m) != 0) {
			tlbot_buf_reset(body);
			tlbot_buf_adds(body, "metrics too large\n");
			*ctype = "text/plain; charset=utf-8";
			return HTTP_STATUS_INTERNAL_SERVER_ERROR;
		}
		return HTTP_STATUS_OK;
	}
	tlbot_buf_adds(body, "not found: try /healthz or /metrics\n");
	return HTTP_STATUS_NOT_FOUND;
}

static int
callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	struct lws_context *ctx = lws_get_context(wsi);
	struct tlbot_metrics_server *srv = ctx ? lws_context_user(ctx) : NULL;
	struct pss *pss = user;

	switch (reason) {
	case LWS_CALLBACK_HTTP: {
		unsigned char hdr[LWS_PRE + 512], *start = hdr + LWS_PRE, *p = start,
		                                  *end = hdr + sizeof(hdr) - 1;
		struct tlbot_buf body;
		const char *ctype;
		unsigned status;

		if (srv == NULL || pss == NULL)
			return 1;
		tlbot_buf_init(&body, BODY_MAX);
		status = answer(srv, in ? (const char *)in : "",
		                lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) > 0, &body, &ctype);
		free(pss->buf);
		pss->len = body.len;
		pss->buf = malloc(LWS_PRE + body.len + 1);
		if (pss->buf == NULL) {
			tlbot_buf_release(&body);
			return 1;
		}
		memcpy(pss->buf + LWS_PRE, tlbot_buf_str(&body), body.len);
		tlbot_buf_release(&body);
		if (lws_add_http_common_headers(wsi, status, ctype, (lws_filepos_t)pss->len, &p,
		                                end) ||
		    lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
		                                 (const unsigned char *)"no-store", 8, &p, end) ||
		    lws_finalize_write_http_header(wsi, start, &p, end))
			return 1;
		lws_callback_on_writable(wsi);
		return 0;
	}
	case LWS_CALLBACK_HTTP_WRITEABLE:
		if (pss == NULL || pss->buf == NULL)
			break;
		if (lws_write(wsi, pss->buf + LWS_PRE, pss->len, LWS_WRITE_HTTP_FINAL) <
		    (int)pss->len)
			return -1;
		free(pss->buf);
		pss->buf = NULL;
		if (lws_http_transaction_completed(wsi))
			return -1;
		return 0;
	case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
	case LWS_CALLBACK_CLOSED_HTTP:
		if (pss) {
			free(pss->buf);
			pss->buf = NULL;
		}
		break;
	default:
		break;
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static const struct lws_protocols protocols[] = {
        {"http", callback, sizeof(struct pss), 0, 0, NULL, 0},
        {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void *
serve(void *arg)
{
	struct tlbot_metrics_server *srv = arg;

	while (!srv->stopping)
		if (lws_service(srv->ctx, 0) < 0)
			break;
	return NULL;
}

static void
lws_log_emit(int level, const char *line)
{
	size_t n = strlen(line);

	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		n--;
	log_warnx("metrics listener: %.*s", (int)n, line);
	(void)level;
}

/* Split "[HOST:]PORT" ("[::1]:9464" too). 0 or -1. */
static int
split_listen(const char *v, char *host, size_t hostlen, int *port)
{
	const char *colon = strrchr(v, ':');
	char *end = NULL;
	long n;

	errno = 0;
	n = strtol(colon ? colon + 1 : v, &end, 10);
	if (errno || end == NULL || *end != '\0' || n < 1 || n > 65535)
		return -1;
	*port = (int)n;
	if (colon == NULL) {
		snprintf(host, hostlen, "127.0.0.1");
		return 0;
	}
	if (v[0] == '[' && colon > v + 1 && colon[-1] == ']')
		return snprintf(host, hostlen, "%.*s", (int)(colon - v - 2), v + 1) < (int)hostlen
		               ? 0
		               : -1;
	return snprintf(host, hostlen, "%.*s", (int)(colon - v), v) < (int)hostlen ? 0 : -1;
}

int
tlbot_metrics_server_start(const struct tlbot_config *cfg, struct tlbot_metrics_server **out)
{
	struct tlbot_metrics_server *srv;
	struct lws_context_creation_info info;

	*out = NULL;
	if (cfg->metrics_listen == NULL || cfg->metrics_listen[0] == '\0')
		return 0;
	srv = calloc(1, sizeof(*srv));
	if (srv == NULL)
		return -1;
	srv->cfg = cfg;
	if (split_listen(cfg->metrics_listen, srv->iface, sizeof(srv->iface), &srv->port) != 0) {
		log_error("metrics_listen '%s': expected PORT or HOST:PORT", cfg->metrics_listen);
		free(srv);
		return -1;
	}
	lws_set_log_level(LLL_ERR, lws_log_emit);
	memset(&info, 0, sizeof(info));
	info.port = srv->port;
	info.iface = srv->iface;
	info.protocols = protocols;
	info.gid = -1;
	info.uid = -1;
	info.user = srv;
	info.timeout_secs = 10;
	info.keepalive_timeout = 30;
	info.options = LWS_SERVER_OPTION_DISABLE_IPV6 * (strchr(srv->iface, ':') == NULL);
	srv->ctx = lws_create_context(&info);
	if (srv->ctx == NULL) {
		log_error("metrics: cannot listen on %s port %d (in use, or not an address of this "
		          "host?)",
		          srv->iface, srv->port);
		free(srv);
		return -1;
	}
	if (pthread_create(&srv->thread, NULL, serve, srv) != 0) {
		lws_context_destroy(srv->ctx);
		free(srv);
		return -1;
	}
	log_info("metrics: serving /healthz and /metrics on %s port %d", srv->iface, srv->port);
	*out = srv;
	return 0;
}

void
tlbot_metrics_server_stop(struct tlbot_metrics_server *srv)
{
	if (srv == NULL)
		return;
	srv->stopping = 1;
	lws_cancel_service(srv->ctx);
	pthread_join(srv->thread, NULL);
	lws_context_destroy(srv->ctx);
	if (srv->st_open)
		tlbot_store_close(&srv->st);
	free(srv);
}
