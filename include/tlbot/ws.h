/* The WebSocket transport (Matrix WebSockets API draft, "websockets.rst"):
 * GET <ws base>/_matrix/client/unstable/stream?since=&filter= upgraded with
 * subprotocol m.json; the server pushes sync-shaped updates, which go through
 * tlbot_router_apply exactly like /sync batches; the client sends
 * {"id","method","params"} requests (send, ping) and gets
 * {"id","result"|"error"} back. Over libwebsockets.
 *
 * Threads: the libwebsockets loop runs in the receive-side thread (the one
 * that owns d->st and d->router). The worker thread hands "send" requests to
 * it through a locked queue (tlbot_ws_send), wakes it with
 * lws_cancel_service() and waits on a condition variable for the answer. */
#ifndef TLBOT_WS_H
#define TLBOT_WS_H

#include <stddef.h>

#include "tlbot/http.h"

struct tlbot_daemon;
struct tlbot_ws;

/* Defaults until they are configuration keys (see ws.c for the test
 * overrides read from the environment). */
#define TLBOT_WS_SEND_TIMEOUT_MS   10000               /* wait for a send's answer, then use REST */
#define TLBOT_WS_MAX_MESSAGE       (64u * 1024 * 1024) /* cap on one reassembled message */

/* New transport state for d (d->cfg, d->base_url, d->token must be set).
 * Returns NULL on out of memory or a bad websocket_url (logged). Caller
 * frees with tlbot_ws_free after every thread using it has stopped. */
struct tlbot_ws *tlbot_ws_new(struct tlbot_daemon *d);
void tlbot_ws_free(struct tlbot_ws *ws);

/* The receive loop for transport websocket or auto, in the calling thread
 * (d->st, d->router). auto: when the handshake is refused (no upgrade, 404,
 * 400, 401...), run /sync instead and re-probe every reprobe interval.
 * websocket: reconnect with backoff for ever. Returns 0 when stopping. */
int tlbot_ws_transport_run(struct tlbot_daemon *d);

/* Worker side: send one event over the socket with txn_id as the request id.
 * Returns 0 when the server answered: *e is TLBOT_OK (*event_id set, caller
 * frees) or TLBOT_ERR_HTTP (r->status, errcode, error, retry_after_ms set
 * as for REST). Returns 1 when the socket is not up, or the answer was lost
 * (connection dropped, timeout): the caller sends over REST with the same
 * txn_id, which the homeserver de-duplicates. Returns -1 when stopping. */
int tlbot_ws_send(struct tlbot_ws *ws, const char *room_id, const char *event_type,
                  const char *txn_id, const char *content_json, char **event_id,
                  struct tlbot_http_resp *r, enum tlbot_err *e);

/* The same without waiting (the worker keeps several sends in flight):
 * start returns NULL when the socket is not up (send over REST), else a
 * request; the worker is woken (tlbot_daemon_wake) when it is answered or
 * lost. poll returns 2 while it waits for the answer, otherwise what
 * tlbot_ws_send returns (0 answered, 1 use REST) and frees the request.
 * cancel frees a request still waiting (stopping). wait_ms: time left
 * before poll gives up on the answer. */
struct tlbot_ws_req;
struct tlbot_ws_req *tlbot_ws_send_start(struct tlbot_ws *ws, const char *room_id,
                                         const char *event_type, const char *txn_id,
                                         const char *content_json);
int tlbot_ws_send_poll(struct tlbot_ws *ws, struct tlbot_ws_req *req, char **event_id,
                       struct tlbot_http_resp *r, enum tlbot_err *e);
void tlbot_ws_send_cancel(struct tlbot_ws *ws, struct tlbot_ws_req *req);
long tlbot_ws_send_wait_ms(const struct tlbot_ws_req *req);

/* Whether the socket is up now (for logs and tests). */
int tlbot_ws_connected(struct tlbot_ws *ws);

#endif
