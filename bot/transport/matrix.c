/* Client-Server API requests. */
#include <stdlib.h>
#include <string.h>

#include "tlbot/buf.h"
#include "tlbot/clock.h"
#include "tlbot/log.h"
#include "tlbot/matrix.h"

#define API "/_matrix/client/v3"
#define SHORT_TIMEOUT_MS 30000L

/* Build API + printf-style path where every %s argument is escaped. Only %s
 * is supported. Returns a new string or NULL. */
static char *
path_build(const char *fmt, ...)
{
	struct tlbot_buf b;
	va_list ap;
	const char *p;

	tlbot_buf_init(&b, 16384);
	va_start(ap, fmt);
	for (p = fmt; *p; p++) {
		if (p[0] == '%' && p[1] == 's') {
			const char *arg = va_arg(ap, const char *);
			char *e = tlbot_http_escape(arg ? arg : "");

			if (e == NULL || tlbot_buf_adds(&b, e) != 0) {
				free(e);
				va_end(ap);
				tlbot_buf_release(&b);
				return NULL;
			}
			free(e);
			p++;
		} else if (tlbot_buf_addc(&b, *p) != 0) {
			va_end(ap);
			tlbot_buf_release(&b);
			return NULL;
		}
	}
	va_end(ap);
	return tlbot_buf_detach(&b);
}

static enum tlbot_err
call_json(struct tlbot_http *h, const char *method, char *path, json_t *body,
	  long timeout_ms, struct tlbot_http_resp *r)
{
	char *text = NULL;
	enum tlbot_err rc;

	if (path == NULL) {
		json_decref(body);
		return TLBOT_ERR_NOMEM;
	}
	if (body) {
		text = json_dumps(body, JSON_COMPACT);
		json_decref(body);
		if (text == NULL) {
			free(path);
			return TLBOT_ERR_NOMEM;
		}
	}
	rc = tlbot_http_request(h, method, path, text, text ? strlen(text) : 0, NULL, timeout_ms, r);
	free(text);
	free(path);
	return rc;
}

static char *
json_strdup(const json_t *obj, const char *key)
{
	const char *v = json_string_value(json_object_get(obj, key));

	return v ? strdup(v) : NULL;
}

enum tlbot_err
tlbot_mx_discover(const char *homeserver, const char *ca_file, char **base_url)
{
	struct tlbot_http h;
	struct tlbot_http_resp r;
	struct tlbot_buf url;
	enum tlbot_err rc;
	const char *base;

	*base_url = NULL;
	if (strncmp(homeserver, "http://", 7) == 0 || strncmp(homeserver, "https://", 8) == 0) {
		*base_url = strdup(homeserver);
		return *base_url ? TLBOT_OK : TLBOT_ERR_NOMEM;
	}
	tlbot_buf_init(&url, 1024);
	if (tlbot_buf_printf(&url, "https://%s", homeserver) != 0 ||
	    tlbot_http_init(&h, tlbot_buf_str(&url), ca_file) != 0) {
		tlbot_buf_release(&url);
		return TLBOT_ERR_NOMEM;
	}
	tlbot_http_resp_init(&r);
	rc = tlbot_http_request(&h, "GET", "/.well-known/matrix/client", NULL, 0, NULL, 15000, &r);
	base = json_string_value(json_object_get(json_object_get(r.json, "m.homeserver"), "base_url"));
	if (rc == TLBOT_OK && base && (strncmp(base, "https://", 8) == 0 || strncmp(base, "http://", 7) == 0)) {
		*base_url = strdup(base);
		log_info("discovered homeserver %s for %s", base, homeserver);
	} else if (rc == TLBOT_ERR_HTTP && r.status == 404) {
		/* spec: no well-known means the server name is the base URL */
		*base_url = tlbot_buf_detach(&url);
		rc = TLBOT_OK;
	} else if (rc == TLBOT_OK) {
		log_error("discovery: /.well-known/matrix/client of %s has no valid m.homeserver.base_url",
			  homeserver);
		rc = TLBOT_ERR_PARSE;
	} else {
		log_error("discovery: /.well-known/matrix/client of %s: %s", homeserver, r.error);
	}
	tlbot_http_resp_release(&r);
	tlbot_http_release(&h);
	tlbot_buf_release(&url);
	return rc;
}

enum tlbot_err
tlbot_mx_login(struct tlbot_http *h, const char *user_id, const char *password,
	       const char *device_id, char **token, char **device_out, struct tlbot_http_resp *r)
{
	json_t *body = json_pack("{s:s, s:{s:s, s:s}, s:s, s:s}", "type", "m.login.password",
				 "identifier", "type", "m.id.user", "user", user_id,
				 "password", password, "initial_device_display_name", "tlbot");
	enum tlbot_err rc;

	*token = *device_out = NULL;
	if (body == NULL)
		return TLBOT_ERR_NOMEM;
	if (device_id)
		json_object_set_new(body, "device_id", json_string(device_id));
	rc = call_json(h, "POST", path_build(API "/login"), body, SHORT_TIMEOUT_MS, r);
	if (rc != TLBOT_OK)
		return rc;
	*token = json_strdup(r->json, "access_token");
	*device_out = json_strdup(r->json, "device_id");
	if (*token == NULL) {
		free(*device_out);
		*device_out = NULL;
		return TLBOT_ERR_PARSE;
	}
	return TLBOT_OK;
}

enum tlbot_err
tlbot_mx_whoami(struct tlbot_http *h, char **user_id, char **device_id, struct tlbot_http_resp *r)
{
	enum tlbot_err rc = call_json(h, "GET", path_build(API "/account/whoami"), NULL,
				      SHORT_TIMEOUT_MS, r);

	*user_id = *device_id = NULL;
	if (rc != TLBOT_OK)
		return rc;
	*user_id = json_strdup(r->json, "user_id");
	*device_id = json_strdup(r->json, "device_id");
	return *user_id ? TLBOT_OK : TLBOT_ERR_PARSE;
}

long
tlbot_mx_first_sync_timeout_ms(void)
{
	return 1 + (long)(tlbot_clock_mono_ms() % 9973);
}

enum tlbot_err
tlbot_mx_sync(struct tlbot_http *h, const char *since, const char *filter, long timeout_ms,
	      struct tlbot_http_resp *r)
{
	struct tlbot_buf p;
	char *e;
	enum tlbot_err rc;

	tlbot_buf_init(&p, 65536);
	tlbot_buf_printf(&p, API "/sync?timeout=%ld", timeout_ms);
	if (since) {
		e = tlbot_http_escape(since);
		tlbot_buf_printf(&p, "&since=%s", e ? e : "");
		free(e);
	}
	if (filter) {
		e = tlbot_http_escape(filter);
		tlbot_buf_printf(&p, "&filter=%s", e ? e : "");
		free(e);
	}
	/* the client timeout leaves the server time to answer an idle poll */
	rc = call_json(h, "GET", tlbot_buf_detach(&p), NULL, timeout_ms + 20000, r);
	if (rc == TLBOT_OK && (!json_is_object(r->json) ||
			       !json_is_string(json_object_get(r->json, "next_batch")))) {
		snprintf(r->error, sizeof(r->error), "sync answer without next_batch");
		return TLBOT_ERR_PARSE;
	}
	return rc;
}

enum tlbot_err
tlbot_mx_create_filter(struct tlbot_http *h, const char *user_id, const char *filter_json,
		       char **filter_id, struct tlbot_http_resp *r)
{
	json_error_t jerr;
	json_t *body = json_loads(filter_json, 0, &jerr);
	enum tlbot_err rc;

	*filter_id = NULL;
	if (body == NULL)
		return TLBOT_ERR_PARSE;
	rc = call_json(h, "POST", path_build(API "/user/%s/filter", user_id), body,
		       SHORT_TIMEOUT_MS, r);
	if (rc != TLBOT_OK)
		return rc;
	*filter_id = json_strdup(r->json, "filter_id");
	return *filter_id ? TLBOT_OK : TLBOT_ERR_PARSE;
}

enum tlbot_err
tlbot_mx_send(struct tlbot_http *h, const char *room_id, const char *type, const char *txn_id,
	      const char *content_json, char **event_id, struct tlbot_http_resp *r)
{
	char *path = path_build(API "/rooms/%s/send/%s/%s", room_id, type, txn_id);
	enum tlbot_err rc;

	*event_id = NULL;
	if (path == NULL)
		return TLBOT_ERR_NOMEM;
	rc = tlbot_http_request(h, "PUT", path, content_json, strlen(content_json), NULL,
				SHORT_TIMEOUT_MS, r);
	free(path);
	if (rc != TLBOT_OK)
		return rc;
	*event_id = json_strdup(r->json, "event_id");
	return *event_id ? TLBOT_OK : TLBOT_ERR_PARSE;
}

char *
tlbot_mx_send_path(const char *room_id, const char *type, const char *txn_id)
{
	return path_build(API "/rooms/%s/send/%s/%s", room_id, type, txn_id);
}

char *
tlbot_mx_state_path(const char *room_id, const char *type, const char *state_key)
{
	return path_build(API "/rooms/%s/state/%s/%s", room_id, type, state_key);
}

char *
tlbot_mx_joined_members_path(const char *room_id)
{
	return path_build(API "/rooms/%s/joined_members", room_id);
}

char *
tlbot_mx_membership_path(const char *room_id, int join)
{
	return join ? path_build(API "/rooms/%s/join", room_id)
		    : path_build(API "/rooms/%s/leave", room_id);
}

enum tlbot_err
tlbot_mx_put_state(struct tlbot_http *h, const char *room_id, const char *type,
		   const char *state_key, const char *content_json, char **event_id,
		   struct tlbot_http_resp *r)
{
	char *path = path_build(API "/rooms/%s/state/%s/%s", room_id, type, state_key);
	enum tlbot_err rc;

	*event_id = NULL;
	if (path == NULL)
		return TLBOT_ERR_NOMEM;
	rc = tlbot_http_request(h, "PUT", path, content_json, strlen(content_json), NULL,
				SHORT_TIMEOUT_MS, r);
	free(path);
	if (rc != TLBOT_OK)
		return rc;
	*event_id = json_strdup(r->json, "event_id");
	return *event_id ? TLBOT_OK : TLBOT_ERR_PARSE;
}

enum tlbot_err
tlbot_mx_join(struct tlbot_http *h, const char *room_id, struct tlbot_http_resp *r)
{
	return call_json(h, "POST", path_build(API "/rooms/%s/join", room_id), json_object(),
			 SHORT_TIMEOUT_MS, r);
}

enum tlbot_err
tlbot_mx_leave(struct tlbot_http *h, const char *room_id, struct tlbot_http_resp *r)
{
	return call_json(h, "POST", path_build(API "/rooms/%s/leave", room_id), json_object(),
			 SHORT_TIMEOUT_MS, r);
}

enum tlbot_err
tlbot_mx_messages(struct tlbot_http *h, const char *room_id, const char *from, const char *dir,
		  int limit, const char *filter_json, struct tlbot_http_resp *r)
{
	struct tlbot_buf p;
	char *e;

	tlbot_buf_init(&p, 65536);
	e = path_build(API "/rooms/%s/messages", room_id);
	tlbot_buf_printf(&p, "%s?dir=%s&limit=%d", e ? e : "", dir, limit);
	free(e);
	if (from) {
		e = tlbot_http_escape(from);
		tlbot_buf_printf(&p, "&from=%s", e ? e : "");
		free(e);
	}
	if (filter_json) {
		e = tlbot_http_escape(filter_json);
		tlbot_buf_printf(&p, "&filter=%s", e ? e : "");
		free(e);
	}
	return call_json(h, "GET", tlbot_buf_detach(&p), NULL, SHORT_TIMEOUT_MS, r);
}

enum tlbot_err
tlbot_mx_create_dm(struct tlbot_http *h, const char *user_id, int encrypted, char **room_id,
		   struct tlbot_http_resp *r)
{
	json_t *body = json_pack("{s:s, s:b, s:[s]}", "preset", "trusted_private_chat",
				 "is_direct", 1, "invite", user_id);

	/* as clients do: a DM is encrypted from its first event */
	if (body && encrypted)
		json_object_set_new(body, "initial_state",
				    json_pack("[{s:s, s:s, s:{s:s}}]", "type", "m.room.encryption",
					      "state_key", "", "content", "algorithm",
					      "m.megolm.v1.aes-sha2"));
	enum tlbot_err rc;

	*room_id = NULL;
	if (body == NULL)
		return TLBOT_ERR_NOMEM;
	rc = call_json(h, "POST", path_build(API "/createRoom"), body, SHORT_TIMEOUT_MS, r);
	if (rc != TLBOT_OK)
		return rc;
	*room_id = json_strdup(r->json, "room_id");
	return *room_id ? TLBOT_OK : TLBOT_ERR_PARSE;
}

enum tlbot_err
tlbot_mx_account_data_get(struct tlbot_http *h, const char *user_id, const char *type,
			  struct tlbot_http_resp *r)
{
	return call_json(h, "GET", path_build(API "/user/%s/account_data/%s", user_id, type), NULL,
			 SHORT_TIMEOUT_MS, r);
}

enum tlbot_err
tlbot_mx_account_data_put(struct tlbot_http *h, const char *user_id, const char *type,
			  const char *content_json, struct tlbot_http_resp *r)
{
	char *path = path_build(API "/user/%s/account_data/%s", user_id, type);
	enum tlbot_err rc;

	if (path == NULL)
		return TLBOT_ERR_NOMEM;
	rc = tlbot_http_request(h, "PUT", path, content_json, strlen(content_json), NULL,
				SHORT_TIMEOUT_MS, r);
	free(path);
	return rc;
}

enum tlbot_err
tlbot_mx_upload(struct tlbot_http *h, const void *data, size_t len, const char *mimetype,
		const char *filename, char **content_uri, struct tlbot_http_resp *r)
{
	char *path = path_build("/_matrix/media/v3/upload?filename=%s", filename);
	enum tlbot_err rc;

	*content_uri = NULL;
	if (path == NULL)
		return TLBOT_ERR_NOMEM;
	rc = tlbot_http_request(h, "POST", path, data, len, mimetype, 120000, r);
	free(path);
	if (rc != TLBOT_OK)
		return rc;
	*content_uri = json_strdup(r->json, "content_uri");
	return *content_uri ? TLBOT_OK : TLBOT_ERR_PARSE;
}

enum tlbot_err
tlbot_mx_get_state(struct tlbot_http *h, const char *room_id, const char *type,
		   const char *state_key, struct tlbot_http_resp *r)
{
	return call_json(h, "GET", path_build(API "/rooms/%s/state/%s/%s", room_id, type, state_key),
			 NULL, SHORT_TIMEOUT_MS, r);
}

enum tlbot_err
tlbot_mx_joined_members(struct tlbot_http *h, const char *room_id, struct tlbot_http_resp *r)
{
	return call_json(h, "GET", path_build(API "/rooms/%s/joined_members", room_id), NULL,
			 SHORT_TIMEOUT_MS, r);
}

enum tlbot_err
tlbot_mx_profile(struct tlbot_http *h, const char *user_id, struct tlbot_http_resp *r)
{
	return call_json(h, "GET", path_build(API "/profile/%s", user_id), NULL, SHORT_TIMEOUT_MS,
			 r);
}
