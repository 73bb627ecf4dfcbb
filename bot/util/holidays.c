/* UK bank holidays from the GOV.UK feed: parse (jansson), look up, refresh
 * (libcurl) into a cached copy. See include/tlbot/holidays.h. */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tlbot/buf.h"
#include "tlbot/holidays.h"
#include "tlbot/log.h"
#include "tlbot/sched_time.h"

#define FEED_MAX  (4u * 1024 * 1024) /* the real feed is ~60 KiB */
#define TITLE_MAX 80
#define NSLOTS    4

static const char *const divisions[] = {"england-and-wales", "scotland", "northern-ireland", NULL};

struct holiday {
	char date[11];
	unsigned char division;
	char title[TITLE_MAX];
};

/* One parsed file, re-read when its size or mtime changes. */
struct slot {
	char *path;
	struct timespec mtime;
	off_t size;
	int valid;
	size_t n;
	struct holiday *h; /* sorted by division, date */
};

static pthread_mutex_t hol_lock = PTHREAD_MUTEX_INITIALIZER;
static struct slot slots[NSLOTS];
static char *cache_path;
static char source_buf[4096];

int
tlbot_holidays_division_valid(const char *division)
{
	size_t i;

	for (i = 0; division && divisions[i]; i++)
		if (strcmp(divisions[i], division) == 0)
			return 1;
	return 0;
}

static int
division_index(const char *division)
{
	int i;

	for (i = 0; division && divisions[i]; i++)
		if (strcmp(divisions[i], division) == 0)
			return i;
	return -1;
}

void
tlbot_holidays_set_cache_path(const char *path)
{
	pthread_mutex_lock(&hol_lock);
	free(cache_path);
	cache_path = path ? strdup(path) : NULL;
	pthread_mutex_unlock(&hol_lock);
}

const char *
tlbot_holidays_shipped_path(void)
{
	static const char *const candidates[] = {
#ifdef TLBOT_DATADIR
	        TLBOT_DATADIR "/bank-holidays.json",
#endif
#ifdef TLBOT_SOURCE_DIR
	        TLBOT_SOURCE_DIR "/config/bank-holidays.json",
#endif
	        "/usr/local/share/tlbot/bank-holidays.json",
	        "/usr/share/tlbot/bank-holidays.json",
	        NULL,
	};
	size_t i;

	for (i = 0; candidates[i]; i++)
		if (access(candidates[i], R_OK) == 0)
			return candidates[i];
	return NULL;
}

static int
cmp_holiday(const void *a, const void *b)
{
	const struct holiday *x = a, *y = b;

	if (x->division != y->division)
		return x->division < y->division ? -1 : 1;
	return strcmp(x->date, y->date);
}

/* Parse a feed document into a sorted array (new, caller frees). 0 or -1. */
static int
parse_feed(const char *text, size_t len, struct holiday **out, size_t *nout)
{
	json_error_t jerr;
	json_t *root = json_loadb(text, len, 0, &jerr);
	struct holiday *h = NULL;
	size_t n = 0, cap = 0;
	int d, rc = -1;

	*out = NULL;
	*nout = 0;
	if (!json_is_object(root))
		goto out;
	for (d = 0; divisions[d]; d++) {
		json_t *div = json_object_get(root, divisions[d]);
		json_t *events = json_object_get(div, "events");
		size_t i;

		if (!json_is_object(div) || !json_is_array(events) || json_array_size(events) == 0)
			goto out;
		for (i = 0; i < json_array_size(events); i++) {
			json_t *ev = json_array_get(events, i);
			const char *date = json_string_value(json_object_get(ev, "date"));
			const char *title = json_string_value(json_object_get(ev, "title"));
			int y, m, dd;

			if (date == NULL || tlbot_date_split(date, &y, &m, &dd) != 0)
				goto out;
			if (n == cap) {
				size_t ncap = cap ? cap * 2 : 256;
				struct holiday *nh;

				if (ncap > 100000)
					goto out;
				nh = realloc(h, ncap * sizeof(*h));
				if (nh == NULL)
					goto out;
				h = nh;
				cap = ncap;
			}
			memcpy(h[n].date, date, 11);
			h[n].division = (unsigned char)d;
			snprintf(h[n].title, sizeof(h[n].title), "%s",
			         title ? title : "bank holiday");
			n++;
		}
	}
	qsort(h, n, sizeof(*h), cmp_holiday);
	*out = h;
	*nout = n;
	h = NULL;
	rc = 0;
out:
	free(h);
	json_decref(root);
	return rc;
}

int
tlbot_holidays_validate(const char *text, size_t len)
{
	struct holiday *h;
	size_t n;

	if (text == NULL || len == 0 || len > FEED_MAX || parse_feed(text, len, &h, &n) != 0)
		return -1;
	free(h);
	return 0;
}

/* Read a whole file (capped). New buffer, caller frees. */
static char *
read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	struct tlbot_buf b;
	char chunk[8192];
	size_t r;

	if (f == NULL)
		return NULL;
	tlbot_buf_init(&b, FEED_MAX);
	while ((r = fread(chunk, 1, sizeof(chunk), f)) > 0)
		if (tlbot_buf_add(&b, chunk, r) != 0) {
			fclose(f);
			tlbot_buf_release(&b);
			return NULL;
		}
	fclose(f);
	*len = b.len;
	return tlbot_buf_detach(&b);
}

/* The slot for path, loaded and current. Call with hol_lock held. Returns
 * the slot when the file is valid, else NULL. */
static struct slot *
load(const char *path)
{
	struct slot *s = NULL, *victim = &slots[0];
	struct stat sb;
	char *text;
	size_t len, i;

	if (path == NULL || *path == '\0' || stat(path, &sb) != 0)
		return NULL;
	for (i = 0; i < NSLOTS; i++) {
		if (slots[i].path && strcmp(slots[i].path, path) == 0) {
			s = &slots[i];
			break;
		}
		if (slots[i].path == NULL)
			victim = &slots[i];
	}
	if (s && s->size == sb.st_size && s->mtime.tv_sec == sb.st_mtim.tv_sec &&
	    s->mtime.tv_nsec == sb.st_mtim.tv_nsec)
		return s->valid ? s : NULL;
	if (s == NULL) {
		s = victim;
		free(s->path);
		s->path = strdup(path);
		if (s->path == NULL)
			return NULL;
	}
	free(s->h);
	s->h = NULL;
	s->n = 0;
	s->valid = 0;
	s->size = sb.st_size;
	s->mtime = sb.st_mtim;
	text = read_file(path, &len);
	if (text && parse_feed(text, len, &s->h, &s->n) == 0)
		s->valid = 1;
	else
		log_warnx("bank holidays: %s is not a valid GOV.UK feed file; ignored", path);
	free(text);
	return s->valid ? s : NULL;
}

/* The first valid source. Call with hol_lock held. */
static struct slot *
current(const char *override_path)
{
	struct slot *s = NULL;

	if (override_path && *override_path)
		s = load(override_path);
	if (s == NULL && cache_path)
		s = load(cache_path);
	if (s == NULL)
		s = load(tlbot_holidays_shipped_path());
	return s;
}

/* Index of the first entry of division d with date >= date. */
static size_t
lower_bound(const struct slot *s, int d, const char *date)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct holiday *h = &s->h[mid];

		if (h->division < d || (h->division == d && strcmp(h->date, date) < 0))
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int
tlbot_holidays_check(const char *override_path, const char *division, const char *date, char *title,
                     size_t titlelen)
{
	int d = division_index(division), y, m, dd, rc = -1;
	struct slot *s;
	size_t i;

	if (d < 0 || tlbot_date_split(date, &y, &m, &dd) != 0)
		return -1;
	pthread_mutex_lock(&hol_lock);
	s = current(override_path);
	if (s) {
		i = lower_bound(s, d, date);
		rc = i < s->n && s->h[i].division == d && strcmp(s->h[i].date, date) == 0;
		if (rc == 1 && title && titlelen)
			snprintf(title, titlelen, "%s", s->h[i].title);
	}
	pthread_mutex_unlock(&hol_lock);
	return rc;
}

int
tlbot_holidays_next(const char *override_path, const char *division, const char *date, char out[11],
                    char *title, size_t titlelen)
{
	int d = division_index(division), y, m, dd, rc = -1;
	struct slot *s;
	size_t i;

	if (d < 0 || tlbot_date_split(date, &y, &m, &dd) != 0)
		return -1;
	pthread_mutex_lock(&hol_lock);
	s = current(override_path);
	if (s) {
		i = lower_bound(s, d, date);
		rc = 1;
		if (i < s->n && s->h[i].division == d) {
			memcpy(out, s->h[i].date, 11);
			if (title && titlelen)
				snprintf(title, titlelen, "%s", s->h[i].title);
			rc = 0;
		}
	}
	pthread_mutex_unlock(&hol_lock);
	return rc;
}

const char *
tlbot_holidays_source(const char *override_path)
{
	struct slot *s;
	const char *p = NULL;

	pthread_mutex_lock(&hol_lock);
	s = current(override_path);
	if (s) {
		snprintf(source_buf, sizeof(source_buf), "%s", s->path);
		p = source_buf;
	}
	pthread_mutex_unlock(&hol_lock);
	return p;
}

int
tlbot_holidays_install(const char *dest_path, const char *text, size_t len)
{
	struct tlbot_buf tmp;
	int fd = -1, rc = -1;
	size_t off = 0;

	if (dest_path == NULL || tlbot_holidays_validate(text, len) != 0) {
		log_warnx("bank holidays: refusing to install an invalid feed document");
		return -1;
	}
	tlbot_buf_init(&tmp, 4096);
	if (tlbot_buf_printf(&tmp, "%s.tmp.%ld", dest_path, (long)getpid()) != 0)
		goto out;
	fd = open(tlbot_buf_str(&tmp), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		log_warn("bank holidays: cannot create %s", tlbot_buf_str(&tmp));
		goto out;
	}
	while (off < len) {
		ssize_t w = write(fd, text + off, len - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			log_warn("bank holidays: cannot write %s", tlbot_buf_str(&tmp));
			goto out;
		}
		off += (size_t)w;
	}
	if (fsync(fd) != 0) {
		log_warn("bank holidays: fsync %s", tlbot_buf_str(&tmp));
		goto out;
	}
	if (close(fd) != 0) {
		fd = -1;
		log_warn("bank holidays: close %s", tlbot_buf_str(&tmp));
		goto out;
	}
	fd = -1;
	if (rename(tlbot_buf_str(&tmp), dest_path) != 0) {
		log_warn("bank holidays: cannot rename to %s", dest_path);
		goto out;
	}
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	if (rc != 0 && tmp.len)
		unlink(tlbot_buf_str(&tmp));
	tlbot_buf_release(&tmp);
	return rc;
}

static size_t
on_data(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct tlbot_buf *b = arg;

	if (tlbot_buf_add(b, ptr, size * nmemb) != 0)
		return 0; /* too large: abort the transfer */
	return size * nmemb;
}

int
tlbot_holidays_refresh(const char *dest_path)
{
	struct tlbot_buf body;
	CURL *c;
	CURLcode cc;
	long status = 0;
	int rc = -1;

	if (dest_path == NULL)
		return -1;
	c = curl_easy_init();
	if (c == NULL)
		return -1;
	tlbot_buf_init(&body, FEED_MAX);
	curl_easy_setopt(c, CURLOPT_URL, TLBOT_HOLIDAYS_URL);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(c, CURLOPT_MAXREDIRS, 3L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(c, CURLOPT_MAXFILESIZE, (long)FEED_MAX);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "https");
#endif
	curl_easy_setopt(c, CURLOPT_USERAGENT, "tlbot/" TLBOT_VERSION " (bank holidays)");
	cc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (cc != CURLE_OK) {
		log_warnx("bank holidays: fetching %s failed: %s; keeping the copy we have",
		          TLBOT_HOLIDAYS_URL, curl_easy_strerror(cc));
	} else if (status != 200) {
		log_warnx("bank holidays: %s answered HTTP %ld; keeping the copy we have",
		          TLBOT_HOLIDAYS_URL, status);
	} else if (tlbot_holidays_install(dest_path, tlbot_buf_str(&body), body.len) == 0) {
		log_info("bank holidays: refreshed %s from %s", dest_path, TLBOT_HOLIDAYS_URL);
		tlbot_holidays_set_cache_path(dest_path);
		rc = 0;
	}
	curl_easy_cleanup(c);
	tlbot_buf_release(&body);
	return rc;
}
