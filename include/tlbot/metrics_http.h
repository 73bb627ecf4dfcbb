/* The health and metrics listener (bot/core/metrics_http.c): GET /healthz
 * (200 or 503 with a one-line reason) and GET /metrics (Prometheus text
 * format 0.0.4), served by libwebsockets' HTTP server in its own thread. */
#ifndef TLBOT_METRICS_HTTP_H
#define TLBOT_METRICS_HTTP_H

#include "tlbot/config.h"

struct tlbot_metrics_server;

/* Start listening on cfg->metrics_listen ("[HOST:]PORT", a bare port on
 * 127.0.0.1). Returns 0 with *out set (NULL when metrics_listen is unset),
 * or -1 after logging why (the address is in use, not local...). cfg is
 * borrowed and must outlive the server. */
int tlbot_metrics_server_start(const struct tlbot_config *cfg, struct tlbot_metrics_server **out);
/* Stop and free (NULL is fine). */
void tlbot_metrics_server_stop(struct tlbot_metrics_server *srv);

#endif
