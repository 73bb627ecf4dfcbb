/* One reader for matrix.to links and matrix: URIs. See mxuri.h.
 *
 * Percent-decoding is libcurl's curl_easy_unescape: it takes no handle
 * (the argument is ignored since curl 7.82 and NULL was always allowed),
 * touches no global state and does no I/O, so the reader stays pure; it is
 * the decoder the rest of the daemon already links, and it keeps what the
 * two readers this one replaces accepted (a malformed "%zz" stays as
 * typed). curl's URL API (curl_url_set) would not help: it wants
 * "scheme://" and so refuses "matrix:u/...", and for matrix.to it hands
 * back the whole fragment, which must still be split on its raw '/' before
 * decoding (spec: decoded ids may hold slashes). A decoded NUL is refused
 * here, since curl_easy_unescape passes it through. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "tlbot/parse.h"

#include "mxuri.h"

/* Does [s, end) start with prefix, ignoring ASCII case? */
static int
istarts(const char *s, const char *end, const char *prefix)
{
	size_t n = strlen(prefix);

	return (size_t)(end - s) >= n && strncasecmp(s, prefix, n) == 0;
}

/* Is [s, end) exactly word, ignoring ASCII case? */
static int
iequals(const char *s, const char *end, const char *word)
{
	return (size_t)(end - s) == strlen(word) && istarts(s, end, word);
}

/* The first byte of [s, end) once decoded ("%40" is '@'), or 0. */
static int
first_decoded(const char *s, const char *end)
{
	static const char hex[] = "0123456789abcdef0123456789ABCDEF";
	const char *hi, *lo;

	if (s >= end)
		return 0;
	if (*s != '%')
		return (unsigned char)*s;
	if (end - s < 3)
		return '%';
	hi = s[1] ? strchr(hex, s[1]) : NULL;
	lo = s[2] ? strchr(hex, s[2]) : NULL;
	if (hi == NULL || lo == NULL)
		return '%';
	return (int)(((hi - hex) % 16) * 16 + (lo - hex) % 16);
}

/* Percent-decode [s, end) into out (TLBOT_MXURI_ID_MAX + 1 bytes), after
 * sigil when it is not 0. Refuses an empty result and one that is too
 * long or holds a NUL, a space or a control byte. Returns 0 or -1. */
static int
decode(const char *s, const char *end, char sigil, char *out)
{
	size_t o = sigil ? 1 : 0, i;
	char *dec;
	int declen = 0, rc = -1;

	if (s >= end || end - s > 3 * TLBOT_MXURI_ID_MAX)
		return -1;
	dec = curl_easy_unescape(NULL, s, (int)(end - s), &declen);
	if (dec == NULL)
		return -1;
	if (declen > 0 && o + (size_t)declen <= TLBOT_MXURI_ID_MAX) {
		for (i = 0; i < (size_t)declen; i++)
			if ((unsigned char)dec[i] <= ' ' || dec[i] == 0x7f)
				break;
		if (i == (size_t)declen) {
			out[0] = sigil;
			memcpy(out + o, dec, (size_t)declen);
			out[o + (size_t)declen] = '\0';
			rc = 0;
		}
	}
	curl_free(dec);
	return rc;
}

/* Does id (with its sigil) have the shape its kind needs? */
static int
id_ok(enum tlbot_mxuri_kind kind, const char *id)
{
	const char *colon;

	switch (kind) {
	case TLBOT_MXURI_USER:
		return tlbot_is_user_id(id);
	case TLBOT_MXURI_ROOM:
		return id[0] == '!' && id[1] != '\0';
	case TLBOT_MXURI_ALIAS:
		colon = strchr(id, ':');
		return id[0] == '#' && colon != NULL && colon > id + 1 && colon[1] != '\0';
	}
	return 0;
}

int
tlbot_mxuri_id_ok(enum tlbot_mxuri_kind kind, const char *id)
{
	size_t i;

	for (i = 0; id[i]; i++)
		if ((unsigned char)id[i] <= ' ' || id[i] == 0x7f)
			return 0;
	return i <= TLBOT_MXURI_ID_MAX && id_ok(kind, id);
}

/* The query items of [q, end): via (repeatable) and action. */
static void
read_query(const char *q, const char *end, struct tlbot_mxuri *out)
{
	while (q < end) {
		const char *amp = memchr(q, '&', (size_t)(end - q));
		const char *item_end = amp ? amp : end;

		if (istarts(q, item_end, "via=")) {
			if (out->n_via < TLBOT_MXURI_VIA_MAX &&
			    decode(q + 4, item_end, 0, out->via[out->n_via]) == 0)
				out->n_via++;
		} else if (iequals(q, item_end, "action=join")) {
			out->action = TLBOT_MXURI_ACTION_JOIN;
		} else if (iequals(q, item_end, "action=chat")) {
			out->action = TLBOT_MXURI_ACTION_CHAT;
		}
		q = amp ? amp + 1 : end;
	}
}

/* The event part of a permalink, [s, end) without its sigil when sigil is
 * '$', as typed otherwise: into out->event_id. Returns 0 or -1. */
static int
read_event(const char *s, const char *end, char sigil, struct tlbot_mxuri *out)
{
	if (decode(s, end, sigil, out->event_id) != 0)
		return -1;
	return out->event_id[0] == '$' && out->event_id[1] != '\0' ? 0 : -1;
}

/* matrix.to: the part after "#/", up to the end of the link. */
static int
read_matrix_to(const char *p, const char *end, struct tlbot_mxuri *out)
{
	const char *q = memchr(p, '?', (size_t)(end - p));
	const char *path_end = q ? q : end, *slash = NULL;

	switch (first_decoded(p, path_end)) {
	case '@':
		out->kind = TLBOT_MXURI_USER;
		break;
	case '!':
		out->kind = TLBOT_MXURI_ROOM;
		break;
	case '#':
		out->kind = TLBOT_MXURI_ALIAS;
		break;
	default:
		return -1;
	}
	/* a user id may hold '/' (historical localparts); a room's first raw
	 * '/' starts the event id, which may hold more of them */
	if (out->kind != TLBOT_MXURI_USER)
		slash = memchr(p, '/', (size_t)(path_end - p));
	if (decode(p, slash ? slash : path_end, 0, out->id) != 0 || !id_ok(out->kind, out->id))
		return -1;
	if (slash && read_event(slash + 1, path_end, 0, out) != 0)
		return -1;
	if (q)
		read_query(q + 1, end, out);
	return 0;
}

/* matrix: the part after "matrix:", up to the end of the URI. */
static int
read_matrix_scheme(const char *p, const char *end, struct tlbot_mxuri *out)
{
	static const struct {
		const char *type;
		enum tlbot_mxuri_kind kind;
		char sigil;
	} types[] = {
	        {"u", TLBOT_MXURI_USER, '@'},      {"user", TLBOT_MXURI_USER, '@'},
	        {"r", TLBOT_MXURI_ALIAS, '#'},     {"room", TLBOT_MXURI_ALIAS, '#'},
	        {"roomid", TLBOT_MXURI_ROOM, '!'},
	};
	const char *frag = memchr(p, '#', (size_t)(end - p)), *q, *path_end, *type_end, *id_end;
	size_t i;

	if (frag)
		end = frag; /* reserved by the spec */
	q = memchr(p, '?', (size_t)(end - p));
	path_end = q ? q : end;
	if (path_end - p >= 2 && p[0] == '/' && p[1] == '/') {
		/* an authority, reserved by the spec */
		p = memchr(p + 2, '/', (size_t)(path_end - p - 2));
		if (p == NULL)
			return -1;
		p++;
	}
	type_end = memchr(p, '/', (size_t)(path_end - p));
	if (type_end == NULL)
		return -1;
	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (iequals(p, type_end, types[i].type))
			break;
	if (i == sizeof(types) / sizeof(types[0]))
		return -1;
	out->kind = types[i].kind;
	p = type_end + 1;
	id_end = memchr(p, '/', (size_t)(path_end - p));
	if (decode(p, id_end ? id_end : path_end, types[i].sigil, out->id) != 0 ||
	    !id_ok(out->kind, out->id))
		return -1;
	if (id_end) {
		const char *e = id_end + 1, *e_end = memchr(e, '/', (size_t)(path_end - e));

		/* only a room has events, and only one: e/<event> ends the path */
		if (out->kind == TLBOT_MXURI_USER || e_end == NULL ||
		    !(iequals(e, e_end, "e") || iequals(e, e_end, "event")) ||
		    memchr(e_end + 1, '/', (size_t)(path_end - e_end - 1)) != NULL ||
		    read_event(e_end + 1, path_end, '$', out) != 0)
			return -1;
	}
	if (q)
		read_query(q + 1, end, out);
	return 0;
}

int
tlbot_mxuri_parse(const char *uri, size_t len, struct tlbot_mxuri *out)
{
	static const char *const to[] = {"https://matrix.to/#/", "http://matrix.to/#/", NULL};
	const char *end = uri + len;
	size_t i;

	if (uri == NULL || out == NULL)
		return -1;
	memset(out, 0, sizeof(*out));
	for (i = 0; to[i]; i++)
		if (istarts(uri, end, to[i]))
			return read_matrix_to(uri + strlen(to[i]), end, out);
	if (istarts(uri, end, "matrix:"))
		return read_matrix_scheme(uri + strlen("matrix:"), end, out);
	return -1;
}
