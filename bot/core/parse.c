/* Command parser: prefix, family, quoted tokens, --flags, mentions, globs.
 * See include/tlbot/parse.h. Pure functions: no I/O, no globals. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "tlbot/buf.h"
#include "tlbot/parse.h"

#include "mxuri.h"

#define SNIPPET_MAX 32     /* bytes of the body quoted in an error */
#define ECHO_MAX 40        /* bytes of a flag name quoted in an error */
#define MENTIONS_MAX 256   /* distinct ids collected from one message */
#define USER_ID_MAX 255

static const char *const default_prefixes[] = { "!", "/", NULL };

/* ---------------------------------------------------------------- helpers */

static int
is_alpha(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int
is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static int
to_lower(int c)
{
	return (c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c;
}

/* Decode one UTF-8 sequence at s[0..len). Returns its length (1..4) and
 * the code point in *cp, or 0 when the bytes are not valid UTF-8
 * (truncated, overlong, surrogate, above U+10FFFF). */
static size_t
utf8_decode(const unsigned char *s, size_t len, uint32_t *cp)
{
	uint32_t c;
	size_t n, i;

	if (len == 0)
		return 0;
	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		n = 2;
		c = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		n = 3;
		c = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		n = 4;
		c = s[0] & 0x07;
	} else {
		return 0;
	}
	if (len < n)
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3f);
	}
	if ((n == 3 && c < 0x800) || (n == 4 && c < 0x10000) || c > 0x10ffff ||
	    (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return n;
}

/* Unicode white space that separates tokens. Phones and rich composers
 * put no-break spaces next to pills and after punctuation. */
static int
is_space_cp(uint32_t c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == 0xa0 || c == 0x1680 ||
	       (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 ||
	       c == 0x202f || c == 0x205f || c == 0x3000;
}

/* Length of the white space character at s (0 if none). s is valid UTF-8. */
static size_t
space_at(const char *s, const char *end)
{
	uint32_t c;
	size_t n = utf8_decode((const unsigned char *)s, (size_t)(end - s), &c);

	return (n && is_space_cp(c)) ? n : 0;
}

enum quote {
	Q_NONE,
	Q_DQ,       /* "  */
	Q_SQ,       /* '  */
	Q_TDQ_OPEN, /* U+201C left double, U+201E low double */
	Q_TDQ_CLOSE,/* U+201D right double */
	Q_TSQ_OPEN, /* U+2018 left single */
	Q_TSQ_CLOSE,/* U+2019 right single, also the typographic apostrophe */
};

/* Classify the character at s as a quote; *len gets its byte length. */
static enum quote
quote_at(const char *s, const char *end, size_t *len)
{
	const unsigned char *u = (const unsigned char *)s;

	*len = 1;
	if (*s == '"')
		return Q_DQ;
	if (*s == '\'')
		return Q_SQ;
	if (end - s >= 3 && u[0] == 0xe2 && u[1] == 0x80) {
		*len = 3;
		switch (u[2]) {
		case 0x9c: case 0x9e: return Q_TDQ_OPEN;
		case 0x9d: return Q_TDQ_CLOSE;
		case 0x98: return Q_TSQ_OPEN;
		case 0x99: return Q_TSQ_CLOSE;
		default: break;
		}
	}
	*len = 0;
	return Q_NONE;
}

static int
is_single(enum quote q)
{
	return q == Q_SQ || q == Q_TSQ_OPEN || q == Q_TSQ_CLOSE;
}

/* Does the character at s continue a word (so a single quote before it is
 * an apostrophe, as in it's or don’t)? */
static int
word_at(const char *s, const char *end)
{
	uint32_t c;
	size_t n, ql;

	if (s >= end)
		return 0;
	if ((unsigned char)*s < 0x80)
		return is_alpha(*s) || is_digit(*s);
	n = utf8_decode((const unsigned char *)s, (size_t)(end - s), &c);
	return n && !is_space_cp(c) && quote_at(s, end, &ql) == Q_NONE;
}

/* Does q, found inside a section opened by open, close it? */
static int
closes(enum quote open, enum quote q, const char *next, const char *end)
{
	switch (open) {
	case Q_DQ:
		return q == Q_DQ;
	case Q_TDQ_OPEN:
	case Q_TDQ_CLOSE:
		return q == Q_TDQ_CLOSE || q == Q_TDQ_OPEN;
	case Q_SQ:
		return q == Q_SQ && !word_at(next, end);
	case Q_TSQ_OPEN:
	case Q_TSQ_CLOSE:
		return q == Q_TSQ_CLOSE && !word_at(next, end);
	default:
		return 0;
	}
}

/* Copy at most SNIPPET_MAX bytes of s (cut on a character boundary, white
 * space folded to one line) into out, with "..." when cut. */
static void
snippet(const char *s, const char *end, char *out, size_t outlen)
{
	size_t o = 0;

	while (s < end && o + 4 < outlen) {
		uint32_t c;
		size_t n = utf8_decode((const unsigned char *)s, (size_t)(end - s), &c);

		if (n == 0 || o + n > SNIPPET_MAX)
			break;
		if (c == '\n' || c == '\t') {
			out[o++] = ' ';
		} else {
			memcpy(out + o, s, n);
			o += n;
		}
		s += n;
	}
	if (s < end && o + 4 <= outlen) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
}

/* Copy at most max bytes of s into out as printable ASCII ('?' for the
 * rest) so a message stays one safe line. */
static void
echo(const char *s, size_t len, size_t max, char *out, size_t outlen)
{
	size_t i, o = 0;

	for (i = 0; i < len && i < max && o + 1 < outlen; i++) {
		unsigned char c = (unsigned char)s[i];

		out[o++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	if (i < len && o + 4 <= outlen) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
}

/* Check body[0..len) is valid UTF-8 without control characters other
 * than newline and tab. Returns 0 or -1 with a reason. */
static int
check_text(const char *body, size_t len, char *err, size_t errlen)
{
	size_t i = 0;

	while (i < len) {
		uint32_t c;
		size_t n = utf8_decode((const unsigned char *)body + i, len - i, &c);

		if (n == 0) {
			tlbot_errf(err, errlen, "invalid utf-8 at byte %zu", i);
			return -1;
		}
		if ((c < 0x20 && c != '\n' && c != '\t' && c != '\r') || (c >= 0x7f && c <= 0x9f)) {
			tlbot_errf(err, errlen, "control character U+%04X at byte %zu", (unsigned)c, i);
			return -1;
		}
		i += n;
	}
	return 0;
}

/* ---------------------------------------------------------- command line */

void
tlbot_cmdline_release(struct tlbot_cmdline *cl)
{
	size_t i;

	if (cl == NULL)
		return;
	free(cl->name);
	for (i = 0; i < cl->ntok && i < TLBOT_PARSE_MAX_TOKENS; i++)
		free(cl->tok[i].text);
	memset(cl, 0, sizeof(*cl));
}

/* Append the inside of a quoted section opened by open (at open_at) to
 * b, from *pp up to and past its closing quote (*pp moves there). Inside
 * double quotes, \" and \\ are a literal quote and backslash. Returns 0,
 * or -1 with a reason (unbalanced quote, out of memory). */
static int
read_quoted(const char **pp, const char *end, enum quote open, const char *open_at,
	    struct tlbot_buf *b, char *err, size_t errlen)
{
	const char *p = *pp;
	size_t qc, n;

	for (;;) {
		enum quote cq;

		if (p >= end) {
			char snip[SNIPPET_MAX + 8];

			snippet(open_at, end, snip, sizeof(snip));
			tlbot_errf(err, errlen, "unbalanced quote: %s", snip);
			return -1;
		}
		cq = quote_at(p, end, &qc);
		if (cq != Q_NONE && closes(open, cq, p + qc, end)) {
			*pp = p + qc;
			return 0;
		}
		if (*p == '\\' && (open == Q_DQ || open == Q_TDQ_OPEN || open == Q_TDQ_CLOSE) &&
		    p + 1 < end) {
			size_t el;
			enum quote eq = quote_at(p + 1, end, &el);

			if (p[1] == '\\') {
				el = 1;
			} else if (!(eq == Q_DQ || eq == Q_TDQ_OPEN || eq == Q_TDQ_CLOSE)) {
				el = 0;
			}
			if (el) {
				if (tlbot_buf_add(b, p + 1, el) != 0)
					goto oom;
				p += 1 + el;
				continue;
			}
		}
		n = 1;
		if ((unsigned char)*p >= 0x80)
			n = utf8_decode((const unsigned char *)p, (size_t)(end - p), &(uint32_t){ 0 });
		if (n == 0 || tlbot_buf_add(b, p, n) != 0)
			goto oom;
		p += n;
	}
oom:
	tlbot_errf(err, errlen, "out of memory");
	return -1;
}

/* Read one token starting at *pp (not white space) into t. Returns 0, or
 * -1 with a reason (unbalanced quote, out of memory). */
static int
read_token(const char **pp, const char *end, struct tlbot_token *t,
	   char *err, size_t errlen)
{
	const char *p = *pp, *start = *pp;
	struct tlbot_buf b;
	int bare = 1, after_close = 0;

	tlbot_buf_init(&b, TLBOT_PARSE_MAX_BODY);
	t->quoted = 0;
	t->bare = 0;
	while (p < end && space_at(p, end) == 0) {
		size_t ql;
		enum quote q = quote_at(p, end, &ql);
		const char *open_at = p;
		enum quote open;

		/* A single quote opens a section only where a word starts
		 * (token start, after '=' or after another quoted part):
		 * elsewhere it is an apostrophe. */
		if (q != Q_NONE && is_single(q) && p != start && p[-1] != '=' && !after_close)
			q = Q_NONE;
		after_close = 0;
		if (q == Q_NONE) {
			size_t n = 1;

			/* outside quotes, \" and \' are literal quotes */
			if (*p == '\\' && p + 1 < end && (p[1] == '"' || p[1] == '\''))
				p++;
			else if ((unsigned char)*p >= 0x80)
				n = utf8_decode((const unsigned char *)p, (size_t)(end - p),
						&(uint32_t){ 0 });
			if (n == 0 || tlbot_buf_add(&b, p, n) != 0)
				goto oom;
			if (bare)
				t->bare = b.len;
			p += n;
			continue;
		}
		open = q;
		bare = 0;
		t->quoted = 1;
		p += ql;
		if (read_quoted(&p, end, open, open_at, &b, err, errlen) != 0) {
			tlbot_buf_release(&b);
			return -1;
		}
		after_close = 1;
	}
	t->text = tlbot_buf_detach(&b);
	if (t->text == NULL)
		goto oom;
	*pp = p;
	return 0;
oom:
	tlbot_buf_release(&b);
	tlbot_errf(err, errlen, "out of memory");
	return -1;
}

int
tlbot_cmdline_parse(const char *body, const char *const *prefixes,
		    struct tlbot_cmdline *out, char *err, size_t errlen)
{
	const char *p, *end, *name_start;
	size_t i, len, best = 0;

	memset(out, 0, sizeof(*out));
	if (err && errlen)
		err[0] = '\0';
	if (body == NULL)
		return 0;
	if (prefixes == NULL)
		prefixes = default_prefixes;
	/* the longest prefix that matches, followed by an ASCII letter */
	for (i = 0; prefixes[i]; i++) {
		size_t n = strlen(prefixes[i]);

		if (n == 0 || n >= sizeof(out->prefix) || n <= best)
			continue;
		if (strncmp(body, prefixes[i], n) == 0 && is_alpha(body[n])) {
			best = n;
			memcpy(out->prefix, prefixes[i], n + 1);
		}
	}
	if (best == 0)
		return 0;
	len = strlen(body);
	if (len > TLBOT_PARSE_MAX_BODY) {
		tlbot_errf(err, errlen, "command too long: %zu bytes (max %d)", len,
			TLBOT_PARSE_MAX_BODY);
		goto fail;
	}
	if (check_text(body, len, err, errlen) != 0)
		goto fail;
	end = body + len;
	name_start = p = body + best;
	while (p < end && space_at(p, end) == 0)
		p++;
	out->name = malloc((size_t)(p - name_start) + 1);
	if (out->name == NULL) {
		tlbot_errf(err, errlen, "out of memory");
		goto fail;
	}
	for (i = 0; name_start + i < p; i++)
		out->name[i] = (char)to_lower((unsigned char)name_start[i]);
	out->name[i] = '\0';
	for (;;) {
		size_t sp;

		while (p < end && (sp = space_at(p, end)) != 0)
			p += sp;
		if (p >= end)
			break;
		if (out->ntok == TLBOT_PARSE_MAX_TOKENS) {
			tlbot_errf(err, errlen, "too many arguments (max %d)", TLBOT_PARSE_MAX_TOKENS);
			goto fail;
		}
		if (read_token(&p, end, &out->tok[out->ntok], err, errlen) != 0)
			goto fail;
		out->ntok++;
	}
	return 1;
fail:
	tlbot_cmdline_release(out);
	return -1;
}

/* ------------------------------------------------------------------ flags */

/* The length of a spec entry's name (up to '='). */
static size_t
spec_name_len(const char *spec)
{
	const char *eq = strchr(spec, '=');

	return eq ? (size_t)(eq - spec) : strlen(spec);
}

static int
spec_is(const char *spec, const char *name, size_t len)
{
	return spec_name_len(spec) == len && strncmp(spec, name, len) == 0;
}

/* Is t an option token? On success *name and *len give the flag name (empty for
 * the "--" end marker). Only a bare "--" counts; a phone's em or en dash
 * (iOS turns "--" into "—") counts when a letter follows. */
static int
flag_token(const struct tlbot_token *t, const char **name, size_t *len)
{
	const char *s = t->text, *eq;

	if (t->bare >= 2 && s[0] == '-' && s[1] == '-') {
		s += 2;
	} else if (t->bare >= 4 && (unsigned char)s[0] == 0xe2 && (unsigned char)s[1] == 0x80 &&
		   ((unsigned char)s[2] == 0x94 || (unsigned char)s[2] == 0x93) && is_alpha(s[3])) {
		s += 3;
	} else {
		return 0;
	}
	eq = strchr(s, '=');
	*name = s;
	*len = eq ? (size_t)(eq - s) : strlen(s);
	return 1;
}

int
tlbot_token_is_flag(const struct tlbot_token *t, const char **name, size_t *len)
{
	return flag_token(t, name, len);
}

/* Append " (accepted: --a, --b)" or the like to a message. */
static void
accepted_list(struct tlbot_buf *m, const char *const *spec)
{
	size_t i;

	if (spec == NULL || spec[0] == NULL) {
		tlbot_buf_adds(m, " (this command takes no flags)");
		return;
	}
	tlbot_buf_adds(m, " (accepted: ");
	for (i = 0; spec[i]; i++)
		tlbot_buf_printf(m, "%s--%.*s", i ? ", " : "", (int)spec_name_len(spec[i]), spec[i]);
	tlbot_buf_adds(m, ")");
}

static void
unknown_flag(const char *name, size_t len, const char *const *spec, char *err, size_t errlen)
{
	struct tlbot_buf m;
	char shown[ECHO_MAX + 8];
	const char *best = NULL;
	size_t i, bestd = (size_t)-1;

	echo(name, len, ECHO_MAX, shown, sizeof(shown));
	tlbot_buf_init(&m, 1024);
	tlbot_buf_printf(&m, "unknown flag --%s", shown);
	if (len <= 64) {
		for (i = 0; spec && spec[i]; i++) {
			char cand[72];
			size_t d, n = spec_name_len(spec[i]);

			if (n >= sizeof(cand) || (len > n ? len - n : n - len) > 2)
				continue;
			memcpy(cand, spec[i], n);
			cand[n] = '\0';
			d = tlbot_edit_distance(shown, cand);
			if (d < bestd && d <= 2 && d < n) {
				bestd = d;
				best = spec[i];
			}
		}
	}
	if (best)
		tlbot_buf_printf(&m, ", did you mean --%.*s?", (int)spec_name_len(best), best);
	accepted_list(&m, spec);
	tlbot_errf(err, errlen, "%s", tlbot_buf_str(&m));
	tlbot_buf_release(&m);
}

int
tlbot_args_bind(const struct tlbot_cmdline *cl, size_t first,
		const char *const *spec, struct tlbot_args *out,
		char *err, size_t errlen)
{
	int end_of_flags = 0;
	size_t i, j;

	memset(out, 0, sizeof(*out));
	if (err && errlen)
		err[0] = '\0';
	for (i = first; i < cl->ntok && i < TLBOT_PARSE_MAX_TOKENS; i++) {
		const struct tlbot_token *t = &cl->tok[i];
		const char *name, *value = NULL, *entry = NULL, *kind;
		char shown[ECHO_MAX + 8];
		size_t len;

		if (end_of_flags || !flag_token(t, &name, &len)) {
			out->argv[out->argc++] = t->text;
			continue;
		}
		if (len == 0 && name[0] == '\0') {
			end_of_flags = 1;
			continue;
		}
		for (j = 0; spec && spec[j]; j++) {
			if (spec_is(spec[j], name, len)) {
				entry = spec[j];
				break;
			}
		}
		if (entry == NULL) {
			unknown_flag(name, len, spec, err, errlen);
			goto fail;
		}
		echo(name, len, ECHO_MAX, shown, sizeof(shown));
		kind = entry + spec_name_len(entry); /* "", "=" or "=*" */
		if (kind[0] == '\0') {
			if (name[len] == '=') {
				tlbot_errf(err, errlen, "--%s does not take a value", shown);
				goto fail;
			}
		} else if (name[len] == '=') {
			value = name + len + 1;
			/* "--region=" is missing its value; --region="" is explicit */
			if (value[0] == '\0' && !t->quoted) {
				tlbot_errf(err, errlen, "--%s needs a value", shown);
				goto fail;
			}
		} else {
			const char *nn;
			size_t nl;

			if (i + 1 >= cl->ntok || flag_token(&cl->tok[i + 1], &nn, &nl)) {
				tlbot_errf(err, errlen, "--%s needs a value", shown);
				goto fail;
			}
			value = cl->tok[++i].text;
		}
		if (strcmp(kind, "=*") != 0 && tlbot_args_has(out, entry)) {
			tlbot_errf(err, errlen, "--%s given twice", shown);
			goto fail;
		}
		out->flags[out->nflags].name = entry;
		out->flags[out->nflags].value = value;
		out->nflags++;
	}
	return 0;
fail:
	memset(out, 0, sizeof(*out));
	return -1;
}

/* Match a recorded flag (spec entry) against a caller's name, which may be
 * written "region", "--region" or as the spec entry itself. */
static int
flag_is(const struct tlbot_flag *f, const char *name)
{
	if (name[0] == '-' && name[1] == '-')
		name += 2;
	return spec_is(f->name, name, spec_name_len(name));
}

const char *
tlbot_args_get(const struct tlbot_args *a, const char *name)
{
	size_t i;

	for (i = a->nflags; i > 0; i--)
		if (flag_is(&a->flags[i - 1], name))
			return a->flags[i - 1].value;
	return NULL;
}

int
tlbot_args_has(const struct tlbot_args *a, const char *name)
{
	size_t i;

	for (i = 0; i < a->nflags; i++)
		if (flag_is(&a->flags[i], name))
			return 1;
	return 0;
}

/* --------------------------------------------------------------- user ids */

static int
is_localpart_char(int c)
{
	return is_alpha(c) || is_digit(c) || c == '.' || c == '_' || c == '=' ||
	       c == '-' || c == '/' || c == '+';
}

static int
is_dns_char(int c)
{
	return is_alpha(c) || is_digit(c) || c == '-' || c == '.';
}

static int
is_ipv6_char(int c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ||
	       c == ':' || c == '.';
}

/* Length of a server name (hostname [":" port]) at the start of s, per the
 * spec's grammar, or 0. */
static size_t
server_name_len(const char *s, size_t len)
{
	size_t i = 0, n;

	if (len && s[0] == '[') {
		for (i = 1; i < len && is_ipv6_char(s[i]); i++)
			;
		if (i - 1 < 2 || i - 1 > 45 || i >= len || s[i] != ']')
			return 0;
		i++;
	} else {
		while (i < len && is_dns_char(s[i]))
			i++;
		if (i == 0 || i > 255)
			return 0;
	}
	if (i < len && s[i] == ':') {
		for (n = 0; i + 1 + n < len && is_digit(s[i + 1 + n]); n++)
			;
		if (n == 0 || n > 5)
			return 0;
		i += 1 + n;
	}
	return i;
}

int
tlbot_is_user_id(const char *s)
{
	size_t len, i;

	if (s == NULL || s[0] != '@')
		return 0;
	len = strlen(s);
	if (len > USER_ID_MAX)
		return 0;
	for (i = 1; i < len && is_localpart_char((unsigned char)s[i]); i++)
		;
	if (i == 1 || i >= len || s[i] != ':')
		return 0;
	i++;
	return i < len && server_name_len(s + i, len - i) == len - i;
}

/* --------------------------------------------------------------- mentions */

struct seen {
	char *ids[MENTIONS_MAX];
	size_t n;
	void (*fn)(const char *, void *);
	void *arg;
};

/* Report id (len bytes, not NUL-terminated) if it is a valid user id not
 * reported before. */
static void
emit(struct seen *s, const char *id, size_t len)
{
	char *copy;
	size_t i;

	if (len == 0 || len > USER_ID_MAX || s->n == MENTIONS_MAX || memchr(id, '\0', len))
		return;
	copy = malloc(len + 1);
	if (copy == NULL)
		return;
	memcpy(copy, id, len);
	copy[len] = '\0';
	if (!tlbot_is_user_id(copy)) {
		free(copy);
		return;
	}
	for (i = 0; i < s->n; i++) {
		if (strcmp(s->ids[i], copy) == 0) {
			free(copy);
			return;
		}
	}
	s->ids[s->n++] = copy;
	if (s->fn)
		s->fn(copy, s->arg);
}

/* ASCII case-insensitive prefix test. */
static int
istarts(const char *s, const char *end, const char *prefix)
{
	size_t n = strlen(prefix), i;

	if ((size_t)(end - s) < n)
		return 0;
	for (i = 0; i < n; i++)
		if (to_lower((unsigned char)s[i]) != to_lower((unsigned char)prefix[i]))
			return 0;
	return 1;
}

/* ASCII case-insensitive search for needle in [s, end). */
static const char *
ifind(const char *s, const char *end, const char *needle)
{
	for (; s < end; s++)
		if (istarts(s, end, needle))
			return s;
	return NULL;
}

/* A link target that names a user (a matrix.to link or a matrix: URI, see
 * mxuri.h). */
static void
pill(struct seen *s, const char *v, size_t len)
{
	struct tlbot_mxuri uri;

	if (tlbot_mxuri_parse(v, len, &uri) == 0 && uri.kind == TLBOT_MXURI_USER)
		emit(s, uri.id, strlen(uri.id));
}

static void
scan_html(struct seen *s, const char *html)
{
	const char *p = html, *end = html + strlen(html);
	const char *reply = ifind(p, end, "<mx-reply>");

	while (p < end) {
		const char *h = ifind(p, end, "href"), *v;
		char quote = 0;

		/* searched again only once passed, so the scan stays linear */
		if (reply && reply < p)
			reply = ifind(p, end, "<mx-reply>");
		if (reply && (h == NULL || reply < h)) {
			/* the reply fallback quotes someone else's message */
			const char *close = ifind(reply, end, "</mx-reply>");

			if (close == NULL)
				return;
			p = close + strlen("</mx-reply>");
			reply = ifind(p, end, "<mx-reply>");
			continue;
		}
		if (h == NULL)
			return;
		p = h + 4;
		while (p < end && (*p == ' ' || *p == '\t' || *p == '\n'))
			p++;
		if (p >= end || *p != '=')
			continue;
		p++;
		while (p < end && (*p == ' ' || *p == '\t' || *p == '\n'))
			p++;
		if (p < end && (*p == '"' || *p == '\''))
			quote = *p++;
		v = p;
		while (p < end && (quote ? *p != quote : (*p != ' ' && *p != '>' && *p != '\t' &&
							 *p != '\n')))
			p++;
		pill(s, v, (size_t)(p - v));
	}
}

/* Skip a reply fallback ("> <@alice:x> original" lines and the blank line
 * after them) at the start of a plain body. */
static const char *
skip_fallback(const char *body)
{
	const char *p = body;

	if (strncmp(p, "> ", 2) != 0)
		return body;
	while (*p == '>') {
		const char *nl = strchr(p, '\n');

		if (nl == NULL)
			return p + strlen(p);
		p = nl + 1;
	}
	if (*p == '\n')
		p++;
	return p;
}

const char *
tlbot_reply_strip_body(const char *body)
{
	return body ? skip_fallback(body) : NULL;
}

char *
tlbot_reply_strip_html(const char *html)
{
	const char *end, *open, *close;
	size_t n;
	char *out;

	if (html == NULL)
		return NULL;
	end = html + strlen(html);
	open = ifind(html, end, "<mx-reply>");
	if (open == NULL)
		return NULL;
	close = ifind(open, end, "</mx-reply>");
	if (close == NULL)
		return NULL;
	close += strlen("</mx-reply>");
	n = (size_t)(open - html) + (size_t)(end - close);
	out = malloc(n + 1);
	if (out == NULL)
		return NULL;
	memcpy(out, html, (size_t)(open - html));
	memcpy(out + (open - html), close, (size_t)(end - close));
	out[n] = '\0';
	return out;
}

/* Does a command start at s (a prefix, then a letter)? */
static int
command_at(const char *s, const char *const *prefixes)
{
	size_t i;

	if (prefixes == NULL)
		prefixes = default_prefixes;
	for (i = 0; prefixes[i]; i++) {
		size_t n = strlen(prefixes[i]);

		if (n && strncmp(s, prefixes[i], n) == 0 && is_alpha(s[n]))
			return 1;
	}
	return 0;
}

size_t
tlbot_command_lines(const char *body, const char *const *prefixes, size_t *starts, size_t max)
{
	const char *p = body;
	size_t n = 0;
	int quoted = 0;

	if (body == NULL || max == 0)
		return 0;
	while (*p == ' ' || *p == '\t')
		p++;
	if (!command_at(p, prefixes))
		return 0;
	starts[n++] = (size_t)(p - body);
	for (; *p; p++) {
		if (*p == '"' && p[-1] != '\\')
			quoted = !quoted;
		if (*p == '\n' && !quoted) {
			const char *q = p + 1;

			while (*q == ' ' || *q == '\t')
				q++;
			if (command_at(q, prefixes) && n < max)
				starts[n++] = (size_t)(q - body);
		}
	}
	return n;
}

static void
scan_plain(struct seen *s, const char *body)
{
	const char *p = skip_fallback(body);
	const char *start = body;

	for (; *p; p++) {
		const char *q;
		size_t n;

		if (*p != '@' || (p > start && (is_localpart_char((unsigned char)p[-1]) || p[-1] == '@')))
			continue;
		q = p + 1;
		while (is_localpart_char((unsigned char)*q))
			q++;
		if (q == p + 1 || *q != ':')
			continue;
		q++;
		if (*q == '[') {
			q++;
			while (is_ipv6_char((unsigned char)*q))
				q++;
			if (*q != ']')
				continue;
			q++;
		} else {
			while (is_dns_char((unsigned char)*q))
				q++;
		}
		/* a port: ':' then digits */
		if (*q == ':' && is_digit((unsigned char)q[1])) {
			q++;
			while (is_digit((unsigned char)*q))
				q++;
		}
		n = (size_t)(q - p);
		/* trailing sentence punctuation is not part of the id */
		while (n > 0 && (p[n - 1] == '.' || p[n - 1] == '-' || p[n - 1] == ':'))
			n--;
		emit(s, p, n);
		p = q - 1;
	}
}

size_t
tlbot_mentions_collect(const char *body, const char *formatted_body,
		       const struct json_t *mentions_user_ids,
		       void (*fn)(const char *user_id, void *arg), void *arg)
{
	struct seen s;
	size_t i, n;

	memset(&s, 0, sizeof(s));
	s.fn = fn;
	s.arg = arg;
	if (mentions_user_ids && json_is_array(mentions_user_ids)) {
		for (i = 0; i < json_array_size(mentions_user_ids); i++) {
			const json_t *v = json_array_get(mentions_user_ids, i);

			if (json_is_string(v))
				emit(&s, json_string_value(v), json_string_length(v));
		}
	}
	if (formatted_body)
		scan_html(&s, formatted_body);
	if (body)
		scan_plain(&s, body);
	n = s.n;
	for (i = 0; i < s.n; i++)
		free(s.ids[i]);
	return n;
}

/* ------------------------------------------------------- distance, globs */

size_t
tlbot_edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), i, j, d;
	size_t *prev2, *prev, *cur, *rows;

	if (la == 0)
		return lb;
	if (lb == 0)
		return la;
	rows = malloc(3 * (lb + 1) * sizeof(*rows));
	if (rows == NULL)
		return la > lb ? la : lb;
	prev2 = rows;
	prev = rows + lb + 1;
	cur = rows + 2 * (lb + 1);
	for (j = 0; j <= lb; j++)
		prev[j] = j;
	for (i = 1; i <= la; i++) {
		size_t *t;

		cur[0] = i;
		for (j = 1; j <= lb; j++) {
			size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
			size_t v = prev[j] + 1;

			if (cur[j - 1] + 1 < v)
				v = cur[j - 1] + 1;
			if (prev[j - 1] + cost < v)
				v = prev[j - 1] + cost;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
			    prev2[j - 2] + 1 < v)
				v = prev2[j - 2] + 1;
			cur[j] = v;
		}
		t = prev2;
		prev2 = prev;
		prev = cur;
		cur = t;
	}
	d = prev[lb];
	free(rows);
	return d;
}

int
tlbot_glob_match(const char *pattern, const char *s)
{
	const char *star = NULL, *resume = NULL;

	if (pattern == NULL || s == NULL)
		return 0;
	while (*s) {
		if (*pattern == '*') {
			star = pattern++;
			resume = s;
		} else if (*pattern == '?' || *pattern == *s) {
			pattern++;
			s++;
		} else if (star) {
			pattern = star + 1;
			s = ++resume;
		} else {
			return 0;
		}
	}
	while (*pattern == '*')
		pattern++;
	return *pattern == '\0';
}
