/* Daemon plumbing: login, wake-ups, interruptible sleeps. */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "tlbot/daemon.h"
#include "tlbot/holidays.h"
#include "tlbot/log.h"
#include "tlbot/matrix.h"

void
tlbot_daemon_fail(struct tlbot_daemon *d, int code)
{
	pthread_mutex_lock(&d->lock);
	if (d->exit_code == 0)
		d->exit_code = code;
	*d->stop = 1;
	pthread_cond_broadcast(&d->wake);
	if (d->wake_hook)
		d->wake_hook(d->wake_arg);
	pthread_mutex_unlock(&d->lock);
}

void
tlbot_daemon_wake(struct tlbot_daemon *d)
{
	pthread_mutex_lock(&d->lock);
	d->woken = 1;
	pthread_cond_broadcast(&d->wake);
	if (d->wake_hook)
		d->wake_hook(d->wake_arg);
	pthread_mutex_unlock(&d->lock);
}

int
tlbot_daemon_apply(struct tlbot_daemon *d, int *failures, const char *who, const json_t *batch,
		   char **since)
{
	const char *next = json_string_value(json_object_get(batch, "next_batch"));
	char *copy;

	if (next == NULL) {
		log_warnx("%s: a batch without next_batch: not applied", who);
		return -1;
	}
	copy = strdup(next);
	if (copy == NULL)
		return -1;
	d->router.isolate = *failures >= 3;
	log_debug("%s: batch %s -> %s", who, *since ? *since : "(start)", next);
	if (tlbot_router_apply(&d->router, batch, *since) != 0) {
		(*failures)++;
		log_error("%s: could not apply a batch (see above); nothing of it was kept%s", who,
			  *failures >= 3 ? "; next time event by event" : "");
		free(copy);
		return -1;
	}
	*failures = 0;
	free(*since);
	*since = copy;
	__atomic_add_fetch(&d->batches_applied, 1, __ATOMIC_RELEASE);
	tlbot_daemon_wake(d);
	return 0;
}

void
tlbot_daemon_trim(void)
{
#ifdef __GLIBC__
	malloc_trim(0);
#endif
}

int
tlbot_daemon_sleep(struct tlbot_daemon *d, long ms)
{
	while (ms > 0 && !*d->stop) {
		long step = ms > 100 ? 100 : ms;
		struct timespec ts = { 0, step * 1000000L };

		nanosleep(&ts, NULL);
		ms -= step;
	}
	return *d->stop != 0;
}

static void
remember(struct tlbot_daemon *d, char *token, char *device)
{
	free(d->token);
	free(d->device_id);
	d->token = token;
	d->device_id = device;
}

/* Password login, reusing device_id when given; stores the new token. */
static int
password_login(struct tlbot_daemon *d, const char *device_id)
{
	struct tlbot_http_resp r;
	char *token = NULL, *device = NULL;
	enum tlbot_err e;
	int attempt = 0;

	tlbot_http_resp_init(&r);
	for (;;) {
		e = tlbot_mx_login(&d->http, d->cfg->user_id, d->cfg->password, device_id, &token,
				   &device, &r);
		if (e == TLBOT_OK || !tlbot_http_retryable(e, &r) || *d->stop)
			break;
		log_warnx("login to %s failed (%s: %s); retrying", d->base_url, tlbot_strerror(e), r.error);
		if (tlbot_daemon_sleep(d, r.retry_after_ms > 0 ? r.retry_after_ms
					: tlbot_backoff_ms(attempt++, 1000, 60000)))
			break;
	}
	if (e != TLBOT_OK) {
		log_error("login as %s at %s failed: %s%s%s (HTTP %ld). Check user_id and password in "
			  "the configuration", d->cfg->user_id, d->base_url, r.errcode,
			  r.errcode[0] ? " " : "", r.error, r.status);
		tlbot_http_resp_release(&r);
		return -1;
	}
	tlbot_http_resp_release(&r);
	remember(d, token, device);
	if (tlbot_store_kv_set(&d->st, "access_token", token) != 0 ||
	    tlbot_store_kv_set(&d->st, "device_id", device ? device : "") != 0)
		return -1;
	log_info("logged in as %s, device %s (kept for the next starts)", d->cfg->user_id,
		 device ? device : "?");
	return tlbot_http_set_token(&d->http, token);
}

int
tlbot_daemon_login(struct tlbot_daemon *d)
{
	struct tlbot_http_resp r;
	char *stored_token = NULL, *stored_device = NULL, *who = NULL, *dev = NULL;
	int from_config = d->cfg->access_token != NULL, attempt = 0, rc = -1;
	enum tlbot_err e;

	tlbot_store_kv_get(&d->st, "device_id", &stored_device);
	if (stored_device && *stored_device == '\0') {
		free(stored_device);
		stored_device = NULL;
	}
	if (from_config) {
		if (tlbot_http_set_token(&d->http, d->cfg->access_token) != 0)
			goto out;
	} else if (tlbot_store_kv_get(&d->st, "access_token", &stored_token) == 0) {
		if (tlbot_http_set_token(&d->http, stored_token) != 0)
			goto out;
	} else {
		if (password_login(d, d->cfg->device_id ? d->cfg->device_id : stored_device) != 0)
			goto out;
	}
	tlbot_http_resp_init(&r);
	for (;;) {
		e = tlbot_mx_whoami(&d->http, &who, &dev, &r);
		if (e == TLBOT_OK || !tlbot_http_retryable(e, &r) || *d->stop)
			break;
		log_warnx("whoami at %s failed (%s: %s); retrying", d->base_url, tlbot_strerror(e), r.error);
		if (tlbot_daemon_sleep(d, r.retry_after_ms > 0 ? r.retry_after_ms
					: tlbot_backoff_ms(attempt++, 1000, 60000))) {
			tlbot_http_resp_release(&r);
			goto out;
		}
	}
	if (e == TLBOT_ERR_HTTP && strcmp(r.errcode, "M_UNKNOWN_TOKEN") == 0) {
		if (from_config || d->cfg->password == NULL) {
			log_error("the homeserver %s rejected the access token (M_UNKNOWN_TOKEN): it was "
				  "logged out or revoked. Log in again to get a new token and put it in "
				  "access_token / access_token_file / TLBOT_ACCESS_TOKEN, or configure a "
				  "password so tlbot can log in itself", d->base_url);
			tlbot_http_resp_release(&r);
			goto out;
		}
		log_warnx("the stored access token was revoked (M_UNKNOWN_TOKEN); logging in again "
			  "with the same device");
		tlbot_http_resp_release(&r);
		if (password_login(d, stored_device) != 0)
			goto out;
		/* sends that reached the server under the old token are looked
		 * for before they are sent again (worker.c verify_after_relogin) */
		if (tlbot_store_kv_set(&d->st, "outbox_verify", "1") != 0)
			goto out;
		rc = tlbot_daemon_login(d);
		goto out;
	}
	if (e != TLBOT_OK) {
		log_error("whoami at %s failed: %s %s (HTTP %ld)", d->base_url, r.errcode, r.error,
			  r.status);
		tlbot_http_resp_release(&r);
		goto out;
	}
	tlbot_http_resp_release(&r);
	if (strcmp(who, d->cfg->user_id) != 0) {
		log_error("the access token belongs to %s, not to the configured user_id %s", who,
			  d->cfg->user_id);
		goto out;
	}
	if (d->token == NULL)
		remember(d, strdup(from_config ? d->cfg->access_token : stored_token), dev ? strdup(dev) : NULL);
	else if (d->device_id == NULL && dev)
		d->device_id = strdup(dev);
	log_info("running as %s (device %s) on %s", who, dev ? dev : "?", d->base_url);
	rc = 0;
out:
	free(stored_token);
	free(stored_device);
	free(who);
	free(dev);
	return rc;
}

void
tlbot_holidays_cache_for(const char *database, char *out, size_t outlen)
{
	const char *slash = strrchr(database, '/');

	if (slash == NULL)
		snprintf(out, outlen, "bank-holidays.json");
	else
		snprintf(out, outlen, "%.*s/bank-holidays.json", (int)(slash - database), database);
}

void *
tlbot_housekeeping_main(void *arg)
{
	struct tlbot_daemon *d = arg;
	char cache[4200];

	tlbot_holidays_cache_for(d->cfg->database, cache, sizeof(cache));
	if (d->cfg->retention_days > 0)
		tlbot_retention_run(d->cfg, d->user_id); /* at start, then daily below */
	/* a first refresh a minute after start, then daily; a failure keeps
	 * the copy we have (cached or shipped) and is retried in an hour */
	if (tlbot_daemon_sleep(d, 60 * 1000))
		return NULL;
	while (!*d->stop) {
		long next_ms = 24L * 3600 * 1000;

		if (tlbot_holidays_refresh(cache) == 0) {
			log_info("bank holidays: refreshed from GOV.UK into %s", cache);
		} else {
			log_warnx("bank holidays: GOV.UK not reachable; keeping %s; retrying in an hour",
				  tlbot_holidays_source(d->cfg->bank_holidays_file));
			next_ms = 3600L * 1000;
		}
		if (tlbot_daemon_sleep(d, next_ms))
			break;
		if (d->cfg->retention_days > 0)
			tlbot_retention_run(d->cfg, d->user_id);
	}
	return NULL;
}
