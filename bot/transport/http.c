/* libcurl wrapper: one easy handle per thread, abortable transfers. */
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

#include "tlbot/http.h"
#include "tlbot/log.h"

#define BODY_MAX (64 * 1024 * 1024) /* a sync batch larger than this is refused */

static volatile sig_atomic_t *abort_flag;

static int
hexval(const char *p, unsigned *out)
{
	unsigned v = 0;
	int i;

	for (i = 0; i < 4; i++) {
		char c = p[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned)(c - 'A' + 10);
		else
			return -1;
	}
	*out = v;
	return 0;
}

/* Length of the valid UTF-8 sequence at p (at most n bytes), 0 if invalid. */
static size_t
utf8_len(const unsigned char *p, size_t n)
{
	size_t len, i;
	unsigned cp;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		len = 2, cp = p[0] & 0x1f;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		len = 3, cp = p[0] & 0x0f;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		len = 4, cp = p[0] & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return len;
}

/* A copy of a JSON text with what jansson refuses but a homeserver may
 * relay from any room member replaced by U+FFFD: lone UTF-16 surrogate
 * escapes (\ud800) and invalid UTF-8. One such message must not make every
 * later /sync answer unreadable. Returns 0, or -1 (out of memory). */
static int
json_sanitize(const char *in, size_t len, struct tlbot_buf *out)
{
	static const char fffd[] = "\\ufffd";
	size_t i = 0;
	int in_str = 0;

	while (i < len) {
		unsigned char c = (unsigned char)in[i];
		unsigned hi, lo;
		size_t n;

		if (in_str && c == '\\' && i + 1 < len) {
			if (in[i + 1] == 'u' && i + 6 <= len && hexval(in + i + 2, &hi) == 0 &&
			    hi >= 0xd800 && hi <= 0xdfff) {
				if (hi <= 0xdbff && i + 12 <= len && in[i + 6] == '\\' &&
				    in[i + 7] == 'u' && hexval(in + i + 8, &lo) == 0 && lo >= 0xdc00 &&
				    lo <= 0xdfff) {
					if (tlbot_buf_add(out, in + i, 12) != 0)
						return -1;
					i += 12;
					continue;
				}
				if (tlbot_buf_adds(out, fffd) != 0)
					return -1;
				i += 6;
				continue;
			}
			if (tlbot_buf_add(out, in + i, 2) != 0)
				return -1;
			i += 2;
			continue;
		}
		if (c == '"')
			in_str = !in_str;
		n = utf8_len((const unsigned char *)in + i, len - i);
		if (n == 0) {
			if (tlbot_buf_adds(out, in_str ? fffd : " ") != 0)
				return -1;
			i++;
			continue;
		}
		if (tlbot_buf_add(out, in + i, n) != 0)
			return -1;
		i += n;
	}
	return 0;
}

json_t *
tlbot_json_decode(const char *data, size_t len, json_error_t *jerr)
{
	struct tlbot_buf clean;
	json_t *j = json_loadb(data, len, JSON_ALLOW_NUL, jerr);

	if (j)
		return j;
	tlbot_buf_init(&clean, len * 3 + 16);
	if (json_sanitize(data, len, &clean) == 0) {
		json_error_t again;

		j = json_loadb(tlbot_buf_str(&clean), clean.len, JSON_ALLOW_NUL, &again);
		if (j)
			log_warnx("a response held invalid Unicode (%s): read with U+FFFD in its place",
				  jerr->text);
	}
	tlbot_buf_release(&clean);
	return j;
}

const char *
tlbot_strerror(enum tlbot_err e)
{
	switch (e) {
	case TLBOT_OK: return "ok";
	case TLBOT_ERR_NET: return "network error";
	case TLBOT_ERR_HTTP: return "server error";
	case TLBOT_ERR_PARSE: return "malformed response";
	case TLBOT_ERR_ABORT: return "aborted";
	case TLBOT_ERR_NOMEM: return "out of memory";
	case TLBOT_ERR_DB: return "database error";
	}
	return "unknown error";
}

int
tlbot_http_global_init(void)
{
	return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

void
tlbot_http_global_cleanup(void)
{
	curl_global_cleanup();
}

void
tlbot_http_set_abort_flag(volatile sig_atomic_t *flag)
{
	abort_flag = flag;
}

int
tlbot_http_init(struct tlbot_http *h, const char *base, const char *ca_file)
{
	size_t n;

	memset(h, 0, sizeof(*h));
	h->curl = curl_easy_init();
	h->base = strdup(base);
	h->ca_file = ca_file ? strdup(ca_file) : NULL;
	if (h->curl == NULL || h->base == NULL || (ca_file && h->ca_file == NULL)) {
		tlbot_http_release(h);
		return -1;
	}
	n = strlen(h->base);
	while (n > 0 && h->base[n - 1] == '/')
		h->base[--n] = '\0';
	return 0;
}

void
tlbot_http_release(struct tlbot_http *h)
{
	if (h->curl)
		curl_easy_cleanup(h->curl);
	curl_slist_free_all(h->headers);
	free(h->base);
	if (h->token)
		memset(h->token, 0, strlen(h->token));
	free(h->token);
	free(h->ca_file);
	memset(h, 0, sizeof(*h));
}

int
tlbot_http_set_token(struct tlbot_http *h, const char *token)
{
	struct tlbot_buf hdr;

	if (h->token)
		memset(h->token, 0, strlen(h->token));
	free(h->token);
	h->token = NULL;
	curl_slist_free_all(h->headers);
	h->headers = NULL;
	if (token == NULL)
		return 0;
	tlbot_log_add_secret(token);
	h->token = strdup(token);
	tlbot_buf_init(&hdr, 4096);
	if (h->token == NULL || tlbot_buf_printf(&hdr, "Authorization: Bearer %s", token) != 0) {
		tlbot_buf_release(&hdr);
		return -1;
	}
	h->headers = curl_slist_append(NULL, tlbot_buf_str(&hdr));
	memset(hdr.data, 0, hdr.len);
	tlbot_buf_release(&hdr);
	return h->headers ? 0 : -1;
}

void
tlbot_http_resp_init(struct tlbot_http_resp *r)
{
	memset(r, 0, sizeof(*r));
	tlbot_buf_init(&r->body, BODY_MAX);
	r->retry_after_ms = -1;
}

void
tlbot_http_resp_release(struct tlbot_http_resp *r)
{
	tlbot_buf_release(&r->body);
	if (r->json)
		json_decref(r->json);
	r->json = NULL;
}

static size_t
on_write(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct tlbot_http_resp *r = arg;

	if (tlbot_buf_add(&r->body, ptr, size * nmemb) != 0)
		return 0; /* too large: abort */
	return size * nmemb;
}

static size_t
on_header(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct tlbot_http_resp *r = arg;
	size_t n = size * nmemb;
	static const char name[] = "retry-after:";

	if (n > sizeof(name) && strncasecmp(ptr, name, sizeof(name) - 1) == 0) {
		char tmp[32];
		size_t k = n - (sizeof(name) - 1);
		char *end;
		long v;

		if (k >= sizeof(tmp))
			k = sizeof(tmp) - 1;
		memcpy(tmp, ptr + sizeof(name) - 1, k);
		tmp[k] = '\0';
		v = strtol(tmp, &end, 10);
		/* only the delta-seconds form; an HTTP date is ignored */
		if (end != tmp && v >= 0 && v < 86400 && r->retry_after_ms < 0)
			r->retry_after_ms = v * 1000;
	}
	return n;
}

static int
on_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	return abort_flag && *abort_flag ? 1 : 0;
}

/* Headers of one request: the token, the content type, JSON accepted. */
static struct curl_slist *
request_headers(const struct tlbot_http *h, const void *body, const char *content_type)
{
	struct curl_slist *hdrs = NULL, *p;
	struct tlbot_buf ct;

	tlbot_buf_init(&ct, 512);
	for (p = h->headers; p; p = p->next)
		hdrs = curl_slist_append(hdrs, p->data);
	if (body && tlbot_buf_printf(&ct, "Content-Type: %s",
				     content_type ? content_type : "application/json") == 0)
		hdrs = curl_slist_append(hdrs, tlbot_buf_str(&ct));
	hdrs = curl_slist_append(hdrs, "Accept: application/json");
	hdrs = curl_slist_append(hdrs, "Expect:");
	tlbot_buf_release(&ct);
	return hdrs;
}

/* Set every option of one request on c (after curl_easy_reset). */
static void
request_setup(CURL *c, const struct tlbot_http *h, const char *method, const char *url,
	      struct curl_slist *hdrs, const void *body, size_t bodylen, long timeout_ms,
	      struct tlbot_http_resp *r)
{
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "tlbot/" TLBOT_VERSION);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms < 10000 ? timeout_ms : 10000L);
	curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
	if (h->ca_file)
		curl_easy_setopt(c, CURLOPT_CAINFO, h->ca_file);
	if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)bodylen);
	} else if (strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, "{}");
	}
}

/* Classify a finished transfer and fill r (status, JSON, errcode...). */
static enum tlbot_err
request_finish(CURL *c, CURLcode cc, struct tlbot_http_resp *r, int raw)
{
	json_error_t jerr;
	enum tlbot_err rc;

	jerr.text[0] = '\0';
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	if (cc != CURLE_OK) {
		snprintf(r->error, sizeof(r->error), "%s", curl_easy_strerror(cc));
		return (abort_flag && *abort_flag) ? TLBOT_ERR_ABORT : TLBOT_ERR_NET;
	}
	if (raw && r->status >= 200 && r->status < 300)
		return TLBOT_OK;
	if (r->body.len > 0 && (r->body.data[0] == '{' || r->body.data[0] == '['))
		r->json = tlbot_json_decode(r->body.data, r->body.len, &jerr);
	if (r->json && json_is_object(r->json)) {
		const char *ec = json_string_value(json_object_get(r->json, "errcode"));
		const char *em = json_string_value(json_object_get(r->json, "error"));
		json_t *ra = json_object_get(r->json, "retry_after_ms");

		if (ec)
			snprintf(r->errcode, sizeof(r->errcode), "%s", ec);
		if (em)
			snprintf(r->error, sizeof(r->error), "%s", em);
		if (json_is_integer(ra) && json_integer_value(ra) >= 0)
			r->retry_after_ms = (long)json_integer_value(ra);
	}
	if (r->status >= 200 && r->status < 300) {
		rc = r->json || r->body.len == 0 ? TLBOT_OK : TLBOT_ERR_PARSE;
		if (rc == TLBOT_ERR_PARSE)
			snprintf(r->error, sizeof(r->error), "invalid JSON in a %ld answer: %s",
				 r->status, jerr.text);
	} else {
		rc = TLBOT_ERR_HTTP;
		if (r->error[0] == '\0')
			snprintf(r->error, sizeof(r->error), "HTTP %ld", r->status);
	}
	return rc;
}

enum tlbot_err
tlbot_http_request(struct tlbot_http *h, const char *method, const char *path,
		   const void *body, size_t bodylen, const char *content_type,
		   long timeout_ms, struct tlbot_http_resp *r)
{
	CURL *c = h->curl;
	struct curl_slist *hdrs = NULL;
	struct tlbot_buf url;
	enum tlbot_err rc;

	tlbot_http_resp_release(r);
	tlbot_http_resp_init(r);
	tlbot_buf_init(&url, 16384);
	if (tlbot_buf_adds(&url, h->base) != 0 || tlbot_buf_adds(&url, path) != 0) {
		rc = TLBOT_ERR_NOMEM;
		goto out;
	}
	hdrs = request_headers(h, body, content_type);
	curl_easy_reset(c);
	request_setup(c, h, method, tlbot_buf_str(&url), hdrs, body, bodylen, timeout_ms, r);
	rc = request_finish(c, curl_easy_perform(c), r, h->raw);
out:
	curl_slist_free_all(hdrs);
	tlbot_buf_release(&url);
	return rc;
}

/* ---- transfers driven together (curl multi) ---- */

#define EASY_POOL 16 /* finished easy handles kept for reuse */

struct multi_pool {
	CURL *free[EASY_POOL];
	int nfree;
};

int
tlbot_http_multi_init(struct tlbot_http_multi *m, struct tlbot_http *h)
{
	memset(m, 0, sizeof(*m));
	m->h = h;
	m->multi = curl_multi_init();
	m->pool = calloc(1, sizeof(struct multi_pool));
	if (m->multi == NULL || m->pool == NULL) {
		tlbot_http_multi_release(m);
		return -1;
	}
	return 0;
}

void
tlbot_http_multi_release(struct tlbot_http_multi *m)
{
	struct multi_pool *pool = m->pool;

	if (pool) {
		while (pool->nfree > 0)
			curl_easy_cleanup(pool->free[--pool->nfree]);
		free(pool);
	}
	if (m->multi)
		curl_multi_cleanup(m->multi);
	memset(m, 0, sizeof(*m));
}

void
tlbot_http_xfer_release(struct tlbot_http_multi *m, struct tlbot_http_xfer *x)
{
	struct multi_pool *pool = m->pool;

	if (x->easy) {
		if (x->running)
			curl_multi_remove_handle(m->multi, x->easy);
		if (pool && pool->nfree < EASY_POOL)
			pool->free[pool->nfree++] = x->easy;
		else
			curl_easy_cleanup(x->easy);
	}
	curl_slist_free_all(x->hdrs);
	free(x->url);
	free(x->body);
	tlbot_http_resp_release(&x->resp);
	memset(x, 0, sizeof(*x));
}

int
tlbot_http_xfer_start(struct tlbot_http_multi *m, struct tlbot_http_xfer *x, const char *method,
		      const char *path, const void *body, size_t bodylen,
		      const char *content_type, long timeout_ms)
{
	struct multi_pool *pool = m->pool;
	struct tlbot_buf url;
	void *arg = x->arg;

	memset(x, 0, sizeof(*x));
	x->arg = arg;
	tlbot_http_resp_init(&x->resp);
	tlbot_buf_init(&url, 16384);
	if (tlbot_buf_adds(&url, m->h->base) != 0 || tlbot_buf_adds(&url, path) != 0)
		goto fail;
	x->url = tlbot_buf_detach(&url);
	if (body) {
		x->body = malloc(bodylen + 1);
		if (x->body == NULL)
			goto fail;
		memcpy(x->body, body, bodylen);
		x->body[bodylen] = '\0';
	}
	x->easy = pool->nfree > 0 ? pool->free[--pool->nfree] : curl_easy_init();
	x->hdrs = request_headers(m->h, body, content_type);
	if (x->url == NULL || x->easy == NULL || x->hdrs == NULL)
		goto fail;
	curl_easy_reset(x->easy);
	request_setup(x->easy, m->h, method, x->url, x->hdrs, x->body, bodylen, timeout_ms,
		      &x->resp);
	curl_easy_setopt(x->easy, CURLOPT_PRIVATE, x);
	if (curl_multi_add_handle(m->multi, x->easy) != CURLM_OK)
		goto fail;
	x->running = 1;
	return 0;
fail:
	tlbot_buf_release(&url);
	tlbot_http_xfer_release(m, x);
	x->arg = arg;
	return -1;
}

int
tlbot_http_multi_run(struct tlbot_http_multi *m, long timeout_ms)
{
	int running = 0;

	if (timeout_ms > 0)
		curl_multi_poll(m->multi, NULL, 0, (int)timeout_ms, NULL);
	curl_multi_perform(m->multi, &running);
	return running;
}

struct tlbot_http_xfer *
tlbot_http_multi_done(struct tlbot_http_multi *m, enum tlbot_err *e)
{
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(m->multi, &left)) != NULL) {
		struct tlbot_http_xfer *x = NULL;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
		if (x == NULL)
			continue;
		*e = request_finish(x->easy, msg->data.result, &x->resp, 0);
		curl_multi_remove_handle(m->multi, x->easy);
		x->running = 0;
		return x;
	}
	return NULL;
}

void
tlbot_http_multi_wakeup(struct tlbot_http_multi *m)
{
	if (m->multi)
		curl_multi_wakeup(m->multi);
}

char *
tlbot_http_escape(const char *s)
{
	char *e = curl_easy_escape(NULL, s, 0);
	char *r;

	if (e == NULL)
		return NULL;
	r = strdup(e);
	curl_free(e);
	return r;
}

int
tlbot_http_retryable(enum tlbot_err e, const struct tlbot_http_resp *r)
{
	switch (e) {
	case TLBOT_ERR_NET:
	case TLBOT_ERR_PARSE:
	case TLBOT_ERR_NOMEM:
	case TLBOT_ERR_DB:
		return 1;
	case TLBOT_ERR_HTTP:
		return r->status >= 500 || r->status == 429 || r->status == 408 ||
		       strcmp(r->errcode, "M_LIMIT_EXCEEDED") == 0;
	default:
		return 0;
	}
}

long
tlbot_backoff_ms(int attempt, long base_ms, long cap_ms)
{
	long d = base_ms;
	int i;

	for (i = 0; i < attempt && d < cap_ms; i++)
		d *= 2;
	if (d > cap_ms)
		d = cap_ms;
	/* equal jitter: half fixed, half random, so waits never collapse to 0 */
	return d / 2 + (long)(random() % (d / 2 + 1));
}
