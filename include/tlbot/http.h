/* HTTP client over libcurl, one handle per thread (keeps connections
 * alive). Never logs the access token: it travels only in the
 * Authorization header. */
#ifndef TLBOT_HTTP_H
#define TLBOT_HTTP_H

#include <jansson.h>
#include <signal.h>
#include <stddef.h>

#include "tlbot/buf.h"

enum tlbot_err {
	TLBOT_OK = 0,
	TLBOT_ERR_NET,      /* connect/read failure, timeout, cut body: retry */
	TLBOT_ERR_HTTP,     /* the server answered >= 400: see status/errcode */
	TLBOT_ERR_PARSE,    /* the body was not the JSON we expected: retry */
	TLBOT_ERR_ABORT,    /* shutting down */
	TLBOT_ERR_NOMEM,
	TLBOT_ERR_DB,
};
const char *tlbot_strerror(enum tlbot_err e);

struct tlbot_http {
	void *curl;          /* CURL * */
	char *base;          /* https://matrix.example.org (no trailing /) */
	char *token;         /* access token or NULL */
	char *ca_file;       /* or NULL */
	void *headers;       /* struct curl_slist * for the token */
	int raw;             /* leave a 2xx body undecoded (r->json NULL): the
	                      * first sync splits its own (sync.c) */
};

struct tlbot_http_resp {
	long status;             /* HTTP status, 0 when none */
	struct tlbot_buf body;   /* raw body */
	json_t *json;            /* parsed body when JSON (new reference), else NULL */
	char errcode[64];        /* Matrix errcode or "" */
	char error[256];         /* Matrix error text or curl's message */
	long retry_after_ms;     /* from retry_after_ms or Retry-After; -1 when absent */
};

/* Global init/cleanup (curl_global_*); call once from main. */
int tlbot_http_global_init(void);
void tlbot_http_global_cleanup(void);
/* The flag polled during transfers: when it becomes non-zero every transfer
 * is aborted within ~100 ms and returns TLBOT_ERR_ABORT. */
void tlbot_http_set_abort_flag(volatile sig_atomic_t *flag);

int tlbot_http_init(struct tlbot_http *h, const char *base, const char *ca_file);
void tlbot_http_release(struct tlbot_http *h);
/* Set (or clear with NULL) the access token; it is registered with the log
 * redactor. Returns 0 or -1. */
int tlbot_http_set_token(struct tlbot_http *h, const char *token);

void tlbot_http_resp_init(struct tlbot_http_resp *r);
void tlbot_http_resp_release(struct tlbot_http_resp *r);

/* Perform method on base + path (path already escaped, may contain a
 * query). body may be NULL. timeout_ms bounds the whole transfer. Returns
 * TLBOT_OK on 2xx (r->json set when the body was JSON), else an error;
 * r is always filled as far as known. */
enum tlbot_err tlbot_http_request(struct tlbot_http *h, const char *method, const char *path,
				  const void *body, size_t bodylen, const char *content_type,
				  long timeout_ms, struct tlbot_http_resp *r);

/* Transfers driven together through one curl multi handle (the worker's
 * sends): connections are kept alive in the multi's pool, each transfer has
 * its own easy handle (reused from a small pool). One thread only, except
 * tlbot_http_multi_wakeup. */
struct tlbot_http_multi {
	void *multi;          /* CURLM * */
	struct tlbot_http *h; /* base URL, token, CA file (borrowed) */
	void *pool;           /* idle easy handles */
};
struct tlbot_http_xfer {
	void *easy;  /* CURL * */
	void *hdrs;  /* struct curl_slist * */
	char *url, *body;
	int running; /* added to the multi handle */
	struct tlbot_http_resp resp;
	void *arg;   /* the caller's; kept across start */
};
int tlbot_http_multi_init(struct tlbot_http_multi *m, struct tlbot_http *h);
void tlbot_http_multi_release(struct tlbot_http_multi *m);
/* Start method on base + path as tlbot_http_request does (body copied).
 * Returns 0, or -1 (out of memory; x is left released). */
int tlbot_http_xfer_start(struct tlbot_http_multi *m, struct tlbot_http_xfer *x, const char *method,
			  const char *path, const void *body, size_t bodylen,
			  const char *content_type, long timeout_ms);
/* Wait up to timeout_ms (0: not at all) for activity or a wakeup, then move
 * every transfer on. Returns how many are still running. */
int tlbot_http_multi_run(struct tlbot_http_multi *m, long timeout_ms);
/* A finished transfer (x->resp filled as tlbot_http_request fills r, *e its
 * result) or NULL when none; release it with tlbot_http_xfer_release. */
struct tlbot_http_xfer *tlbot_http_multi_done(struct tlbot_http_multi *m, enum tlbot_err *e);
/* Stop a transfer if running; free what it holds (x->arg is cleared). */
void tlbot_http_xfer_release(struct tlbot_http_multi *m, struct tlbot_http_xfer *x);
/* Make a tlbot_http_multi_run waiting in another thread return now. */
void tlbot_http_multi_wakeup(struct tlbot_http_multi *m);

/* URL-escape one path segment or query value (curl_easy_escape). Caller
 * frees with free(). NULL on OOM. */
char *tlbot_http_escape(const char *s);

/* Decode JSON from the homeserver (an HTTP body or a WebSocket message).
 * \u0000 escapes are allowed (C code sees a string up to its NUL); a text
 * jansson refuses for lone UTF-16 surrogates (\ud800) or invalid UTF-8 is
 * read again with U+FFFD in their place, so one such message from any room
 * member cannot make every later batch unreadable. Returns a new
 * reference, or NULL with jerr set. */
json_t *tlbot_json_decode(const char *data, size_t len, json_error_t *jerr);

/* Retry classification: 1 if the same request may succeed later (network,
 * 5xx, 429/M_LIMIT_EXCEEDED, parse), 0 if it is permanent. */
int tlbot_http_retryable(enum tlbot_err e, const struct tlbot_http_resp *r);

/* Exponential backoff with full jitter: attempt 0.. -> ms in
 * [base*2^attempt/2, base*2^attempt], capped at cap_ms. */
long tlbot_backoff_ms(int attempt, long base_ms, long cap_ms);

#endif
