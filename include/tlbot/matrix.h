/* Client-Server API calls (v3 paths only, spec v1.2 endpoints unless noted
 * with a fallback). Each returns an enum tlbot_err; on TLBOT_ERR_HTTP the
 * response holds status, errcode and retry_after_ms. */
#ifndef TLBOT_MATRIX_H
#define TLBOT_MATRIX_H

#include <jansson.h>

#include "tlbot/http.h"

/* Resolve a bare server name through /.well-known/matrix/client; a value
 * with a scheme is returned as is. *base_url: new string (caller frees). */
enum tlbot_err tlbot_mx_discover(const char *homeserver, const char *ca_file, char **base_url);

/* POST /login with m.login.password; device_id may be NULL. On success the
 * new token and device id are returned (caller frees both). */
enum tlbot_err tlbot_mx_login(struct tlbot_http *h, const char *user_id, const char *password,
			      const char *device_id, char **token, char **device_out,
			      struct tlbot_http_resp *r);
/* GET /account/whoami: user id and device id (caller frees; device may be NULL). */
enum tlbot_err tlbot_mx_whoami(struct tlbot_http *h, char **user_id, char **device_id,
			       struct tlbot_http_resp *r);
/* GET /sync. since may be NULL; filter is a filter id or inline JSON.
 * On success r->json is the batch (owned by r). */
enum tlbot_err tlbot_mx_sync(struct tlbot_http *h, const char *since, const char *filter,
			     long timeout_ms, struct tlbot_http_resp *r);
/* The timeout to send with a first sync (no since), shared by sync.c and
 * the gateway: an initial sync returns at once whatever its timeout, and
 * one that differs from the last start's (1 to 9973 ms, from the clock)
 * keeps Synapse from answering it from its response cache (the same
 * since, filter and timeout within 2 minutes), which would hand a restart
 * a stale position and answer what came since as new. */
long tlbot_mx_first_sync_timeout_ms(void);
/* POST /user/{userId}/filter -> *filter_id (caller frees). */
enum tlbot_err tlbot_mx_create_filter(struct tlbot_http *h, const char *user_id,
				      const char *filter_json, char **filter_id,
				      struct tlbot_http_resp *r);
/* PUT /rooms/{roomId}/send/{type}/{txnId} -> *event_id (caller frees). */
enum tlbot_err tlbot_mx_send(struct tlbot_http *h, const char *room_id, const char *type,
			     const char *txn_id, const char *content_json, char **event_id,
			     struct tlbot_http_resp *r);
/* The paths of tlbot_mx_send and tlbot_mx_join (join = 1) / tlbot_mx_leave,
 * for a request driven by a tlbot_http_multi (PUT content / POST {}, with
 * TLBOT_MX_TIMEOUT_MS). New string (caller frees) or NULL. */
#define TLBOT_MX_TIMEOUT_MS 30000L
char *tlbot_mx_send_path(const char *room_id, const char *type, const char *txn_id);
char *tlbot_mx_membership_path(const char *room_id, int join);
/* PUT /rooms/{roomId}/state/{type}/{stateKey} -> *event_id (caller frees). */
enum tlbot_err tlbot_mx_put_state(struct tlbot_http *h, const char *room_id, const char *type,
				  const char *state_key, const char *content_json, char **event_id,
				  struct tlbot_http_resp *r);
char *tlbot_mx_joined_members_path(const char *room_id); /* GET */
char *tlbot_mx_state_path(const char *room_id, const char *type, const char *state_key); /* PUT */
enum tlbot_err tlbot_mx_join(struct tlbot_http *h, const char *room_id, struct tlbot_http_resp *r);
enum tlbot_err tlbot_mx_leave(struct tlbot_http *h, const char *room_id, struct tlbot_http_resp *r);
/* GET /rooms/{roomId}/messages; r->json holds {chunk,start,end}. */
enum tlbot_err tlbot_mx_messages(struct tlbot_http *h, const char *room_id, const char *from,
				 const char *dir, int limit, const char *filter_json,
				 struct tlbot_http_resp *r);
/* POST /createRoom for a DM with user_id (is_direct, trusted_private_chat;
 * with encrypted, m.room.encryption in initial_state) -> *room_id (caller
 * frees). */
enum tlbot_err tlbot_mx_create_dm(struct tlbot_http *h, const char *user_id, int encrypted,
				  char **room_id, struct tlbot_http_resp *r);
/* GET/PUT /user/{userId}/account_data/{type}. get: r->json is the content;
 * M_NOT_FOUND is an error the caller may treat as empty. */
enum tlbot_err tlbot_mx_account_data_get(struct tlbot_http *h, const char *user_id,
					 const char *type, struct tlbot_http_resp *r);
enum tlbot_err tlbot_mx_account_data_put(struct tlbot_http *h, const char *user_id,
					 const char *type, const char *content_json,
					 struct tlbot_http_resp *r);
/* POST /_matrix/media/v3/upload -> *content_uri (caller frees). */
enum tlbot_err tlbot_mx_upload(struct tlbot_http *h, const void *data, size_t len,
			       const char *mimetype, const char *filename, char **content_uri,
			       struct tlbot_http_resp *r);
/* GET /rooms/{roomId}/state/{type}/{stateKey}; r->json is the content. */
enum tlbot_err tlbot_mx_get_state(struct tlbot_http *h, const char *room_id, const char *type,
				  const char *state_key, struct tlbot_http_resp *r);

/* GET /rooms/{room}/joined_members: r->json is {"joined": {user: {...}}}. */
enum tlbot_err tlbot_mx_joined_members(struct tlbot_http *h, const char *room_id,
				       struct tlbot_http_resp *r);
/* GET /profile/{user}: TLBOT_OK when the user exists (r->json has
 * displayname), TLBOT_ERR_HTTP with status 404 when not. */
enum tlbot_err tlbot_mx_profile(struct tlbot_http *h, const char *user_id,
				struct tlbot_http_resp *r);

#endif
