/* Configuration: YAML file (libyaml) overlaid by TLBOT_* environment. */
#ifndef TLBOT_CONFIG_H
#define TLBOT_CONFIG_H

#include <stddef.h>

#define TLBOT_CONFIG_MAX_LIST 64

/* At most TLBOT_CONFIG_MAX_LIST - 1 entries: v[n] is always NULL, so v can
 * be passed as a NULL-terminated list (e.g. prefixes to
 * tlbot_cmdline_parse). */
struct tlbot_strlist {
	size_t n;
	char *v[TLBOT_CONFIG_MAX_LIST]; /* owned */
};

struct tlbot_config {
	char *homeserver;        /* base URL or server name (resolved later) */
	char *user_id;
	char *password;          /* or NULL */
	char *password_file;
	char *access_token;      /* or NULL */
	char *access_token_file;
	char *device_id;         /* optional fixed device id */
	char *database;          /* default "tlbot.db" */
	struct tlbot_strlist prefixes;        /* default "!", "/" */
	struct tlbot_strlist allowed_users;   /* globs; empty = nobody... see below */
	struct tlbot_strlist allowed_servers; /* server names (globs) */
	struct tlbot_strlist allowed_rooms;   /* room ids/globs; empty = any room */
	struct tlbot_strlist admins;          /* user ids */
	char *log_level;         /* "info" */
	char *transport;         /* "sync" | "websocket" | "auto", default "sync" */
	char *websocket_url;     /* optional */
	char *ca_file;           /* optional CA bundle for private CAs */
	char *timezone;          /* default IANA zone, "Europe/London" */
	int power_level;         /* power needed for write commands, default 50 */
	int sync_timeout_ms;     /* long-poll timeout, default 30000 */
	int timeline_limit;      /* sync filter timeline limit, default 50 */
	int grace_period_s;      /* missed-job grace, default 7200 (key grace_period:
	                          * "2h", "90m", "45s", "1h30m" or seconds) */
	int rate_limit_per_min;  /* commands per user per minute, default 20; 0 = off */
	int handled_events_max;  /* remembered event ids, default 10000 */
	char *dm_notifications;  /* "on" | "off", default on */
	char *digest_room;       /* optional cross-team digest room id */
	char *bank_holidays_file;/* optional path; default the shipped copy */
	int websocket_ping_s;    /* silence after which a WebSocket is dead, default 60 */
	int websocket_reprobe_s; /* auto: re-probe the WebSocket after, default 600 */
	char *websocket_token_in_query; /* "on" | "off": token as ?access_token=, default off */
	/* operations (bot/core/metrics_http.c, log.c, the housekeeping thread) */
	char *metrics_listen;    /* "[HOST:]PORT" for /healthz and /metrics; NULL = off;
	                          * a bare port listens on 127.0.0.1 only */
	int health_max_sync_age_s;   /* /healthz: 503 when the last sync is older, default 90 */
	int health_max_outbox_age_s; /* /healthz: 503 when a pending outbox row is older, default 300 */
	char *log_format;        /* "text" | "json", default text */
	int retention_days;      /* stand-up answers and reminders: delete after; 0 = keep (default) */
	int send_concurrency;    /* outbox requests in flight at once, default 8 */
	int send_per_room;       /* of which to one room (or DM partner) while others
	                          * wait, default 3 */
	int send_give_up_s;      /* a row the homeserver answers with a server error
	                          * (5xx but 502/503/504) this long (and 5 times) is
	                          * marked failed, default 300 */
	char *encryption;        /* "on" | "off": end-to-end encryption, default on */
	char *pickle_key_file;   /* key that encrypts the crypto pickles; default
	                          * <database>.pickle-key, generated (0600) */
	char *pickle_key;        /* the key itself (TLBOT_PICKLE_KEY), or NULL */
	char *source_path;       /* file it was loaded from, or NULL */
	unsigned long long refused; /* internal: keys whose value a loader
	                             * refused and reported; finish does not
	                             * report them missing again */
};

/* Set every field to its default. */
void tlbot_config_init(struct tlbot_config *c);
void tlbot_config_release(struct tlbot_config *c);

/* Load a YAML file into c (on top of what is there). Every problem is
 * reported through report(line, message, arg) with its 1-based line number
 * (0 when it has none): syntax errors, unknown keys (naming the key), wrong
 * types, bad values. Returns the number of problems (0 = fine), -1 if the
 * file cannot be read (reported too). */
int tlbot_config_load_file(struct tlbot_config *c, const char *path,
			   void (*report)(int line, const char *msg, void *arg), void *arg);
/* Same from a string of len bytes, not necessarily NUL-terminated (for
 * tests and fuzzing); source_path is left as it is. */
int tlbot_config_load_string(struct tlbot_config *c, const char *yaml, size_t len,
			     void (*report)(int line, const char *msg, void *arg), void *arg);
/* Overlay TLBOT_<KEY> environment variables (lists comma-separated).
 * Returns the number of problems reported (line 0). getenv_fn lets tests
 * supply their own environment; NULL means getenv. */
int tlbot_config_load_env(struct tlbot_config *c, char *(*getenv_fn)(const char *),
			  void (*report)(int line, const char *msg, void *arg), void *arg);
/* Read access_token_file / password_file into access_token / password when
 * those are unset; then check required keys and consistency (homeserver,
 * user_id, a password or token, transport value, log level...). Returns the
 * number of problems reported. */
int tlbot_config_finish(struct tlbot_config *c,
			void (*report)(int line, const char *msg, void *arg), void *arg);

/* Allow-list checks (globs, case-sensitive). A user is allowed when an
 * allowed_users glob matches the whole user id or an allowed_servers glob
 * matches its server part; with both lists empty, only users on the bot's
 * own server (server part of user_id) are. Admins are always allowed. An
 * empty allowed_rooms allows any room. is_admin: exact id or glob. */
int tlbot_config_user_allowed(const struct tlbot_config *c, const char *user_id);
int tlbot_config_room_allowed(const struct tlbot_config *c, const char *room_id);
int tlbot_config_is_admin(const struct tlbot_config *c, const char *user_id);

#endif
