/* Time zone conversions without touching the process environment.
 *
 * The C library keeps one current zone (TZ): converting in another zone
 * means setenv("TZ") + tzset(), a data race with every other thread that
 * reads the environment (libcurl does, for proxy variables, on each
 * transfer). Instead each zone's TZif file (RFC 8536) is read once, kept
 * immutable for the life of the process, and conversions are pure
 * functions of that data: the transition table for the past, the footer's
 * POSIX TZ rule (RFC 8536 section 3.3) for instants after the last
 * transition. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tlbot/tz.h"

#define ZONEINFO_DIR "/usr/share/zoneinfo"
#define TZIF_MAX_BYTES (1 << 20) /* the largest real zone is ~3 KB */

struct ttinfo {
	int32_t utoff; /* seconds east of UTC */
	int isdst;
	const char *abbr; /* into zone->abbrs */
};

/* One rule date of a POSIX TZ string: Jn, n or Mm.w.d, and a time of day
 * in seconds (may be negative or up to 167 h, RFC 8536 3.3.1). */
struct rule_date {
	char kind; /* 'J', 'D' (zero-based day), 'M' */
	int n, m, w, d;
	long secs;
};

struct posix_tz {
	int valid;
	char std_abbr[16], dst_abbr[16];
	long std_off, dst_off; /* seconds east of UTC */
	int has_dst;
	struct rule_date start, end;
};

struct zone {
	char *name;
	int64_t *trans;	    /* transition instants, ascending */
	unsigned char *idx; /* type index after each transition */
	int ntrans;
	struct ttinfo *types;
	int ntypes;
	char *abbrs;
	struct posix_tz footer;
	struct zone *next;
};

static pthread_mutex_t zones_lock = PTHREAD_MUTEX_INITIALIZER;
static struct zone *zones; /* never freed: one per zone name asked for */

static const char *
zoneinfo_dir(void)
{
	const char *d = getenv("TZDIR");

	return d && *d ? d : ZONEINFO_DIR;
}

static int
name_ok(const char *tz)
{
	return tz != NULL && *tz != '\0' && strlen(tz) <= 128 && strstr(tz, "..") == NULL &&
	       tz[0] != '/';
}

/* ---- the POSIX TZ string of the footer ------------------------------- */

static const char *
parse_abbr(const char *p, char *out, size_t cap)
{
	size_t n = 0;

	if (*p == '<') {
		p++;
		while (*p && *p != '>') {
			if (n + 1 < cap)
				out[n++] = *p;
			p++;
		}
		if (*p != '>')
			return NULL;
		p++;
	} else {
		while ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z')) {
			if (n + 1 < cap)
				out[n++] = *p;
			p++;
		}
	}
	out[n] = '\0';
	return n >= 3 ? p : NULL;
}

/* [+-]hh[:mm[:ss]] into seconds; hours up to 167. */
static const char *
parse_hms(const char *p, long *out)
{
	long sign = 1, h = 0, m = 0, s = 0;
	int digits = 0;

	if (*p == '+' || *p == '-')
		sign = *p++ == '-' ? -1 : 1;
	while (*p >= '0' && *p <= '9' && digits < 3) {
		h = h * 10 + (*p++ - '0');
		digits++;
	}
	if (digits == 0 || h > 167)
		return NULL;
	if (*p == ':') {
		p++;
		if (!(p[0] >= '0' && p[0] <= '5' && p[1] >= '0' && p[1] <= '9'))
			return NULL;
		m = (p[0] - '0') * 10 + (p[1] - '0');
		p += 2;
		if (*p == ':') {
			p++;
			if (!(p[0] >= '0' && p[0] <= '5' && p[1] >= '0' && p[1] <= '9'))
				return NULL;
			s = (p[0] - '0') * 10 + (p[1] - '0');
			p += 2;
		}
	}
	*out = sign * (h * 3600 + m * 60 + s);
	return p;
}

static const char *
parse_int(const char *p, int *out, int lo, int hi)
{
	int v = 0, digits = 0;

	while (*p >= '0' && *p <= '9' && digits < 4) {
		v = v * 10 + (*p++ - '0');
		digits++;
	}
	if (digits == 0 || v < lo || v > hi)
		return NULL;
	*out = v;
	return p;
}

static const char *
parse_rule_date(const char *p, struct rule_date *r)
{
	memset(r, 0, sizeof(*r));
	if (*p == 'J') {
		r->kind = 'J';
		p = parse_int(p + 1, &r->n, 1, 365);
	} else if (*p == 'M') {
		r->kind = 'M';
		p = parse_int(p + 1, &r->m, 1, 12);
		if (p == NULL || *p != '.')
			return NULL;
		p = parse_int(p + 1, &r->w, 1, 5);
		if (p == NULL || *p != '.')
			return NULL;
		p = parse_int(p + 1, &r->d, 0, 6);
	} else {
		r->kind = 'D';
		p = parse_int(p, &r->n, 0, 365);
	}
	if (p == NULL)
		return NULL;
	r->secs = 2 * 3600;
	if (*p == '/')
		p = parse_hms(p + 1, &r->secs);
	return p;
}

/* 0 on success. POSIX offsets are west-positive; stored east-positive. */
static int
parse_posix(const char *s, struct posix_tz *tz)
{
	const char *p = s;
	long off;

	memset(tz, 0, sizeof(*tz));
	p = parse_abbr(p, tz->std_abbr, sizeof(tz->std_abbr));
	if (p == NULL || (p = parse_hms(p, &off)) == NULL)
		return -1;
	tz->std_off = -off;
	tz->dst_off = tz->std_off;
	if (*p == '\0') {
		tz->valid = 1;
		return 0;
	}
	p = parse_abbr(p, tz->dst_abbr, sizeof(tz->dst_abbr));
	if (p == NULL)
		return -1;
	tz->has_dst = 1;
	tz->dst_off = tz->std_off + 3600;
	if (*p != ',' && *p != '\0') {
		if ((p = parse_hms(p, &off)) == NULL)
			return -1;
		tz->dst_off = -off;
	}
	if (*p == '\0') {
		/* no rule: POSIX leaves it to the implementation; the US rules,
		 * as glibc and tzcode use */
		tz->start = (struct rule_date){ 'M', 0, 3, 2, 0, 7200 };
		tz->end = (struct rule_date){ 'M', 0, 11, 1, 0, 7200 };
		tz->valid = 1;
		return 0;
	}
	if (*p != ',' || (p = parse_rule_date(p + 1, &tz->start)) == NULL)
		return -1;
	if (*p != ',' || (p = parse_rule_date(p + 1, &tz->end)) == NULL)
		return -1;
	if (*p != '\0')
		return -1;
	tz->valid = 1;
	return 0;
}

/* ---- civil dates ----------------------------------------------------- */

static int64_t
days_from_civil(int64_t y, int m, int d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (unsigned)((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1);
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static int
is_leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int
month_days(int64_t y, int m)
{
	static const int md[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

	return m == 2 && is_leap(y) ? 29 : md[m - 1];
}

static int64_t
floor_div(int64_t a, int64_t b)
{
	return a / b - ((a % b != 0) && ((a < 0) != (b < 0)));
}

/* Year of a count of seconds since the epoch (as if UTC). */
static int64_t
year_of(int64_t secs)
{
	int64_t z = floor_div(secs, 86400) + 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	int m = (int)(mp < 10 ? mp + 3 : mp - 9);

	return (int64_t)yoe + era * 400 + (m <= 2);
}

/* Local (wall) seconds since the epoch at which a rule date falls in year y. */
static int64_t
rule_local(const struct rule_date *r, int64_t y)
{
	int64_t day;

	if (r->kind == 'J') {
		day = days_from_civil(y, 1, 1) + r->n - 1 + (is_leap(y) && r->n >= 60);
	} else if (r->kind == 'D') {
		day = days_from_civil(y, 1, 1) + r->n;
	} else {
		int64_t first = days_from_civil(y, r->m, 1);
		int wday = (int)((first % 7 + 11) % 7); /* 1970-01-01 was a Thursday (4) */
		int mday = 1 + (r->d - wday + 7) % 7 + 7 * (r->w - 1);

		while (mday > month_days(y, r->m))
			mday -= 7;
		day = first + mday - 1;
	}
	return day * 86400 + r->secs;
}

/* Offset and dst flag the footer rule gives at instant t. */
static void
posix_at(const struct posix_tz *tz, int64_t t, long *off, int *isdst, const char **abbr)
{
	int64_t y, start, end;
	int dst;

	*off = tz->std_off;
	*isdst = 0;
	*abbr = tz->std_abbr;
	if (!tz->has_dst)
		return;
	y = year_of(t + tz->std_off);
	/* transition instants in UTC: the start is given in standard time,
	 * the end in daylight time */
	start = rule_local(&tz->start, y) - tz->std_off;
	end = rule_local(&tz->end, y) - tz->dst_off;
	if (start < end)
		dst = t >= start && t < end;
	else
		dst = !(t >= end && t < start);
	if (dst) {
		*off = tz->dst_off;
		*isdst = 1;
		*abbr = tz->dst_abbr;
	}
}

/* ---- TZif ------------------------------------------------------------ */

static uint32_t
be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t
be64(const unsigned char *p)
{
	return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

struct tzif_counts {
	uint32_t isut, isstd, leap, time, type, chars;
};

static int
read_header(const unsigned char *p, size_t len, struct tzif_counts *c)
{
	if (len < 44 || memcmp(p, "TZif", 4) != 0)
		return -1;
	c->isut = be32(p + 20);
	c->isstd = be32(p + 24);
	c->leap = be32(p + 28);
	c->time = be32(p + 32);
	c->type = be32(p + 36);
	c->chars = be32(p + 40);
	if (c->type == 0 || c->type > 256 || c->time > 100000 || c->chars > 4096 ||
	    c->leap > 10000 || (c->isut && c->isut != c->type) || (c->isstd && c->isstd != c->type))
		return -1;
	return 0;
}

static size_t
block_size(const struct tzif_counts *c, int v1)
{
	size_t tsz = v1 ? 4 : 8;

	return c->time * tsz + c->time + c->type * 6 + c->chars + c->leap * (tsz + 4) + c->isstd +
	       c->isut;
}

static void
zone_free(struct zone *z)
{
	if (z == NULL)
		return;
	free(z->name);
	free(z->trans);
	free(z->idx);
	free(z->types);
	free(z->abbrs);
	free(z);
}

/* Parse a TZif file (version 1 data, or the 64-bit block of v2+ with its
 * footer). Returns a new zone or NULL. */
static struct zone *
parse_tzif(const unsigned char *buf, size_t len)
{
	struct tzif_counts c;
	const unsigned char *p = buf, *end = buf + len;
	struct zone *z;
	int v1, tsz;
	uint32_t i;

	if (read_header(p, len, &c) != 0)
		return NULL;
	v1 = buf[4] == '\0';
	if (!v1) {
		/* skip the version 1 block to the 64-bit one */
		size_t skip = 44 + block_size(&c, 1);

		if (skip >= len)
			return NULL;
		p = buf + skip;
		if (read_header(p, (size_t)(end - p), &c) != 0)
			return NULL;
	}
	tsz = v1 ? 4 : 8;
	if ((size_t)(end - p) < 44 + block_size(&c, v1))
		return NULL;
	p += 44;
	z = calloc(1, sizeof(*z));
	if (z == NULL)
		return NULL;
	z->ntrans = (int)c.time;
	z->ntypes = (int)c.type;
	z->trans = calloc(c.time ? c.time : 1, sizeof(*z->trans));
	z->idx = calloc(c.time ? c.time : 1, 1);
	z->types = calloc(c.type, sizeof(*z->types));
	z->abbrs = calloc(c.chars + 1, 1);
	if (!z->trans || !z->idx || !z->types || !z->abbrs)
		goto fail;
	for (i = 0; i < c.time; i++, p += tsz)
		z->trans[i] = v1 ? (int64_t)(int32_t)be32(p) : be64(p);
	for (i = 0; i < c.time; i++) {
		z->idx[i] = *p++;
		if (z->idx[i] >= c.type || (i > 0 && z->trans[i] <= z->trans[i - 1]))
			goto fail;
	}
	for (i = 0; i < c.type; i++, p += 6) {
		z->types[i].utoff = (int32_t)be32(p);
		z->types[i].isdst = p[4] != 0;
		if (p[5] >= c.chars)
			goto fail;
		z->types[i].abbr = z->abbrs + p[5];
	}
	memcpy(z->abbrs, p, c.chars);
	p += c.chars + c.leap * (tsz + 4) + c.isstd + c.isut;
	if (!v1 && p < end && *p == '\n') {
		const unsigned char *nl = memchr(p + 1, '\n', (size_t)(end - p - 1));
		char footer[128];

		if (nl && (size_t)(nl - p - 1) < sizeof(footer)) {
			memcpy(footer, p + 1, (size_t)(nl - p - 1));
			footer[nl - p - 1] = '\0';
			if (footer[0] && parse_posix(footer, &z->footer) != 0)
				z->footer.valid = 0; /* fall back to the last transition */
		}
	}
	return z;
fail:
	zone_free(z);
	return NULL;
}

static struct zone *
load_zone(const char *tz)
{
	char path[1024];
	FILE *f;
	unsigned char *buf;
	size_t n;
	struct zone *z = NULL;

	if (snprintf(path, sizeof(path), "%s/%s", zoneinfo_dir(), tz) >= (int)sizeof(path))
		return NULL;
	f = fopen(path, "rb");
	if (f == NULL) {
		if (strcmp(tz, "UTC") != 0)
			return NULL;
		/* no tzdata at all: UTC is still UTC */
		z = calloc(1, sizeof(*z));
		if (z && parse_posix("UTC0", &z->footer) == 0)
			return z;
		free(z);
		return NULL;
	}
	buf = malloc(TZIF_MAX_BYTES);
	if (buf != NULL) {
		n = fread(buf, 1, TZIF_MAX_BYTES, f);
		if (n > 0 && n < TZIF_MAX_BYTES)
			z = parse_tzif(buf, n);
		free(buf);
	}
	fclose(f);
	return z;
}

/* The zone named tz, read once; NULL when it is not a valid zone. The
 * result is immutable and lives as long as the process. */
static const struct zone *
zone_get(const char *tz)
{
	struct zone *z;

	if (!name_ok(tz))
		return NULL;
	pthread_mutex_lock(&zones_lock);
	for (z = zones; z; z = z->next)
		if (strcmp(z->name, tz) == 0)
			break;
	if (z == NULL) {
		z = load_zone(tz);
		if (z != NULL) {
			z->name = strdup(tz);
			if (z->name == NULL) {
				zone_free(z);
				z = NULL;
			} else {
				z->next = zones;
				zones = z;
			}
		}
	}
	pthread_mutex_unlock(&zones_lock);
	return z;
}

/* Offset (seconds east), dst flag and abbreviation in force at t. */
static void
zone_at(const struct zone *z, int64_t t, long *off, int *isdst, const char **abbr)
{
	int lo, hi;

	if (z->ntrans == 0 || t < z->trans[0]) {
		if (z->ntypes == 0) {
			posix_at(&z->footer, t, off, isdst, abbr);
			return;
		}
		/* RFC 8536 3.2: before the first transition, type 0 */
		*off = z->types[0].utoff;
		*isdst = z->types[0].isdst;
		*abbr = z->types[0].abbr;
		return;
	}
	if (t >= z->trans[z->ntrans - 1] && z->footer.valid) {
		posix_at(&z->footer, t, off, isdst, abbr);
		return;
	}
	lo = 0;
	hi = z->ntrans - 1; /* trans[lo] <= t; find the last such */
	while (lo < hi) {
		int mid = lo + (hi - lo + 1) / 2;

		if (z->trans[mid] <= t)
			lo = mid;
		else
			hi = mid - 1;
	}
	*off = z->types[z->idx[lo]].utoff;
	*isdst = z->types[z->idx[lo]].isdst;
	*abbr = z->types[z->idx[lo]].abbr;
}

static long
offset_at(const struct zone *z, int64_t t)
{
	long off;
	int isdst;
	const char *abbr;

	zone_at(z, t, &off, &isdst, &abbr);
	return off;
}

/* ---- the API --------------------------------------------------------- */

int
tlbot_tz_valid(const char *tz)
{
	return zone_get(tz) != NULL;
}

int
tlbot_tz_local(const char *tz, time_t t, struct tm *out)
{
	const struct zone *z = zone_get(tz);
	long off;
	int isdst;
	const char *abbr;
	time_t wall;

	if (z == NULL)
		return -1;
	zone_at(z, (int64_t)t, &off, &isdst, &abbr);
	wall = t + off;
	if (gmtime_r(&wall, out) == NULL)
		return -1;
	out->tm_isdst = isdst;
	out->tm_gmtoff = off;
	out->tm_zone = abbr;
	return 0;
}

/* Does t show the wall time y-m-d h:m in zone z? */
static int
shows(const struct zone *z, time_t t, int year, int mon, int mday, int hour, int min)
{
	struct tm tm;
	time_t wall = t + offset_at(z, (int64_t)t);

	return gmtime_r(&wall, &tm) && tm.tm_year == year - 1900 && tm.tm_mon == mon - 1 &&
	       tm.tm_mday == mday && tm.tm_hour == hour && tm.tm_min == min;
}

/* The candidate instants are the wall time read with each offset in force
 * within a day of it; those that show the wall time are its occurrences
 * (the first wins); when none does, it is in a gap and is read with the
 * offset from before the gap, which moves it forward by the gap. */
int
tlbot_tz_mktime(const char *tz, int year, int mon, int mday, int hour, int min, time_t *out)
{
	const struct zone *z = zone_get(tz);
	struct tm w;
	time_t wall, best = (time_t)-1;
	long offs[3];
	int i, found = 0;

	if (z == NULL)
		return -1;
	memset(&w, 0, sizeof(w));
	w.tm_year = year - 1900;
	w.tm_mon = mon - 1;
	w.tm_mday = mday;
	w.tm_hour = hour;
	w.tm_min = min;
	wall = timegm(&w); /* the wall time as if it were UTC */
	if (wall == (time_t)-1)
		return -1;
	/* out-of-range fields normalise, as they did with mktime */
	year = w.tm_year + 1900;
	mon = w.tm_mon + 1;
	mday = w.tm_mday;
	hour = w.tm_hour;
	min = w.tm_min;
	offs[0] = offset_at(z, (int64_t)wall - 86400);
	offs[1] = offset_at(z, (int64_t)wall);
	offs[2] = offset_at(z, (int64_t)wall + 86400);
	for (i = 0; i < 3; i++) {
		time_t t = wall - offs[i];

		if (shows(z, t, year, mon, mday, hour, min) && (!found || t < best)) {
			best = t;
			found = 1;
		}
	}
	if (!found)
		best = wall - offs[0];
	*out = best;
	return 0;
}

int
tlbot_tz_date(const char *tz, time_t t, char out[11])
{
	struct tm tm;

	if (tlbot_tz_local(tz, t, &tm) != 0)
		return -1;
	if (tm.tm_year + 1900 < 0 || tm.tm_year + 1900 > 9999)
		return -1;
	snprintf(out, 11, "%04u-%02u-%02u", (unsigned)(tm.tm_year + 1900) % 10000u,
		 (unsigned)(tm.tm_mon + 1) % 100u, (unsigned)tm.tm_mday % 100u);
	return 0;
}
