/* The typed-argument checker. See include/tlbot/args.h and the parameter
 * table in include/tlbot/command.h. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tlbot/args.h"
#include "tlbot/buf.h"
#include "tlbot/sched_time.h"
#include "tlbot/tz.h"
#include "tlbot/when.h"

#include "mxuri.h"

#define SHOW_MAX 60 /* bytes of a value quoted in an error */

int
tlbot_param_is_flag(const struct tlbot_param *p)
{
	return p->name[0] == '-' && p->name[1] == '-';
}

static size_t
utf8_chars(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			n++;
	return n;
}

/* The family whose records are written prefix-N, or NULL. */
static const struct tlbot_cmd *
ref_family(const char *prefix)
{
	size_t i;

	for (i = 0; prefix && tlbot_commands[i]; i++)
		if (tlbot_commands[i]->ref_prefix &&
		    strcasecmp(tlbot_commands[i]->ref_prefix, prefix) == 0)
			return tlbot_commands[i];
	return NULL;
}

void
tlbot_param_label(const struct tlbot_param *p, char *out, size_t outlen)
{
	const char *nm = tlbot_param_is_flag(p) ? p->name + 2 : p->name;
	size_t i;

	if (p->label) {
		snprintf(out, outlen, "%s", p->label);
		return;
	}
	switch (p->type) {
	case TLBOT_P_INT:
	case TLBOT_P_NUM: snprintf(out, outlen, "N"); return;
	case TLBOT_P_DATE: snprintf(out, outlen, "DATE"); return;
	case TLBOT_P_DURATION: snprintf(out, outlen, "DURATION"); return;
	case TLBOT_P_TIME: snprintf(out, outlen, "HH:MM"); return;
	case TLBOT_P_ZONE: snprintf(out, outlen, "ZONE"); return;
	case TLBOT_P_USER: snprintf(out, outlen, "@user"); return;
	case TLBOT_P_REF: snprintf(out, outlen, "%s-12", p->choices ? p->choices : "X"); return;
	case TLBOT_P_ENUM: snprintf(out, outlen, "%s", p->choices ? p->choices : ""); return;
	case TLBOT_P_BOOL: out[0] = '\0'; return;
	case TLBOT_P_ROOM: snprintf(out, outlen, "ROOM"); return;
	case TLBOT_P_TEXT:
	default:
		if (tlbot_param_is_flag(p)) {
			snprintf(out, outlen, "\"...\"");
			return;
		}
		snprintf(out, outlen, "%s", nm);
		for (i = 0; out[i]; i++)
			out[i] = (char)toupper((unsigned char)out[i]);
		return;
	}
}

/* The last positional, when it is TEXT that takes the rest of the line. */
static const struct tlbot_param *
rest_param(const struct tlbot_param *params)
{
	const struct tlbot_param *p, *last = NULL;

	for (p = params; p && p->name; p++)
		if (!tlbot_param_is_flag(p))
			last = p;
	if (last && last->type == TLBOT_P_TEXT && !(last->mode & (TLBOT_WORD | TLBOT_REPEAT)))
		return last;
	return NULL;
}

void
tlbot_params_usage(const struct tlbot_param *params, struct tlbot_buf *b)
{
	const struct tlbot_param *p, *rest = rest_param(params);
	int opt = 0, first = 1;
	char label[160];

	for (p = params; p && p->name; p++) {
		if (tlbot_param_is_flag(p))
			continue;
		tlbot_param_label(p, label, sizeof(label));
		if (p->mode & TLBOT_OPTIONAL)
			opt++;
		tlbot_buf_printf(b, "%s%s", first ? "" : " ", p->mode & TLBOT_OPTIONAL ? "[" : "");
		if (p->type == TLBOT_P_TEXT && p != rest && !p->label)
			tlbot_buf_printf(b, "\"%s\"", p->name);
		else
			tlbot_buf_adds(b, label);
		if ((p == rest && !p->label) || (p->mode & TLBOT_REPEAT))
			tlbot_buf_adds(b, "...");
		first = 0;
	}
	while (opt-- > 0)
		tlbot_buf_adds(b, "]");
	for (p = params; p && p->name; p++) {
		if (!tlbot_param_is_flag(p))
			continue;
		tlbot_param_label(p, label, sizeof(label));
		tlbot_buf_printf(b, "%s[%s%s%s]", first ? "" : " ", p->name, label[0] ? " " : "", label);
		first = 0;
	}
}

/* ---- values ---- */

static const char *
pool_add(struct tlbot_checked *c, const char *s, size_t len)
{
	char *p;

	if (c->used + len + 1 > sizeof(c->pool))
		return NULL;
	p = c->pool + c->used;
	memcpy(p, s, len);
	p[len] = '\0';
	c->used += len + 1;
	return p;
}

static const char *
pool_str(struct tlbot_checked *c, const char *s)
{
	return pool_add(c, s, strlen(s));
}

/* Does v parse as the type of p (used to join multi-word values)? */
static int
parses(const struct tlbot_param *p, const char *v, time_t now, const char *tz)
{
	char date[11];
	long secs;
	int minute;

	switch (p->type) {
	case TLBOT_P_DATE: return tlbot_when_date(v, now, tz, date, NULL, 0) == 0;
	case TLBOT_P_DURATION: return tlbot_when_duration(v, &secs, NULL, 0) == 0;
	case TLBOT_P_TIME: return tlbot_when_time(v, &minute, NULL, 0) == 0;
	default: return 0;
	}
}

static int
multiword(const struct tlbot_param *p)
{
	return p && (p->type == TLBOT_P_DATE || p->type == TLBOT_P_DURATION ||
		     p->type == TLBOT_P_TIME);
}

static const struct tlbot_param *
find_flag(const struct tlbot_param *params, const char *name, size_t len)
{
	const struct tlbot_param *p;

	for (p = params; p && p->name; p++)
		if (tlbot_param_is_flag(p) && strlen(p->name + 2) == len &&
		    strncmp(p->name + 2, name, len) == 0)
			return p;
	return NULL;
}

/* The positional param for positional number i, or NULL past the end. */
static const struct tlbot_param *
positional(const struct tlbot_param *params, size_t i)
{
	const struct tlbot_param *p, *last = NULL;
	size_t k = 0;

	for (p = params; p && p->name; p++) {
		if (tlbot_param_is_flag(p))
			continue;
		if (k++ == i)
			return p;
		last = p;
	}
	return last && (last->mode & TLBOT_REPEAT) ? last : NULL;
}

/* Copy cl's tokens from first on into out->cl, joining the words of a
 * multi-word date, duration or time ("31 Jan", "2 hours", "next monday")
 * into one token: the longest run of up to TLBOT_WHEN_MAX_WORDS unquoted
 * words that parses. */
static int
join_words(const struct tlbot_param *params, const struct tlbot_cmdline *cl, size_t first,
	   time_t now, const char *tz, struct tlbot_checked *out)
{
	size_t i, npos = 0;
	int end_of_flags = 0;

	memset(&out->cl, 0, sizeof(out->cl));
	memcpy(out->cl.prefix, cl->prefix, sizeof(out->cl.prefix));
	out->cl.name = cl->name;
	for (i = first; i < cl->ntok; i++) {
		const struct tlbot_token *t = &cl->tok[i];
		const struct tlbot_param *p = NULL;
		const char *name;
		size_t len, k, take = 1;

		out->cl.tok[out->cl.ntok++] = *t;
		if (!end_of_flags && tlbot_token_is_flag(t, &name, &len)) {
			if (len == 0 && name[0] == '\0') {
				end_of_flags = 1;
				continue;
			}
			p = find_flag(params, name, len);
			if (p == NULL || p->type == TLBOT_P_BOOL || name[len] == '=' ||
			    i + 1 >= cl->ntok)
				continue;
			t = &cl->tok[++i]; /* its value */
			out->cl.tok[out->cl.ntok++] = *t;
		} else {
			p = positional(params, npos++);
		}
		if (!multiword(p) || t->quoted)
			continue;
		/* the longest run that parses */
		for (k = TLBOT_WHEN_MAX_WORDS; k > 1; k--) {
			char joined[256];
			size_t j, n = 0;
			int ok = i + k <= cl->ntok;

			for (j = 0; ok && j < k; j++) {
				const struct tlbot_token *u = &cl->tok[i + j];
				const char *nn;
				size_t nl;

				if (u->quoted || (j > 0 && tlbot_token_is_flag(u, &nn, &nl)) ||
				    n + strlen(u->text) + 2 > sizeof(joined)) {
					ok = 0;
					break;
				}
				n += (size_t)snprintf(joined + n, sizeof(joined) - n, "%s%s", j ? " " : "",
						      u->text);
			}
			if (ok && parses(p, joined, now, tz)) {
				const char *s = pool_str(out, joined);

				if (s == NULL)
					return -1;
				out->cl.tok[out->cl.ntok - 1].text = (char *)s;
				take = k;
				break;
			}
		}
		i += take - 1;
	}
	return 0;
}

/* A ROOM parameter that takes room ids only (TLBOT_ROOM_ID). */
static int
room_ids_only(const struct tlbot_param *p)
{
	return p->choices && strcmp(p->choices, "!") == 0;
}

/* The word a message uses for a value of p, and whether " for --flag"
 * follows it. */
static void
noun(const struct tlbot_param *p, char *out, size_t outlen)
{
	const struct tlbot_cmd *fam;

	switch (p->type) {
	case TLBOT_P_NUM: snprintf(out, outlen, "number"); break;
	case TLBOT_P_DATE: snprintf(out, outlen, "date"); break;
	case TLBOT_P_DURATION: snprintf(out, outlen, "duration"); break;
	case TLBOT_P_TIME: snprintf(out, outlen, "time"); break;
	case TLBOT_P_USER: snprintf(out, outlen, "user id"); break;
	case TLBOT_P_ROOM: snprintf(out, outlen, "%s", room_ids_only(p) ? "room id" : "room"); break;
	case TLBOT_P_REF:
		fam = ref_family(p->choices);
		snprintf(out, outlen, "%s id", fam ? fam->name : "record");
		break;
	default:
		snprintf(out, outlen, "%s", tlbot_param_is_flag(p) ? p->name + 2 : p->name);
		break;
	}
}

static void
bad(const struct tlbot_param *p, const char *v, const char *how, char *err, size_t errlen)
{
	char nn[64], fl[72] = "";

	noun(p, nn, sizeof(nn));
	if (tlbot_param_is_flag(p) && strcmp(nn, p->name + 2) != 0)
		snprintf(fl, sizeof(fl), " for %s", p->name);
	tlbot_errf(err, errlen, "bad %s '%.*s'%s: %s", nn, SHOW_MAX, v, fl, how);
}

/* "a|b|c" -> "a, b or c" */
static void
choices_text(const char *ch, char *out, size_t outlen)
{
	size_t n = 0, k = 0, count = 1, i;

	for (i = 0; ch[i]; i++)
		if (ch[i] == '|')
			count++;
	out[0] = '\0';
	for (i = 0; ch[i] && n + 8 < outlen; i++) {
		if (ch[i] == '|') {
			k++;
			n += (size_t)snprintf(out + n, outlen - n, "%s", k + 1 == count ? " or " : ", ");
		} else {
			out[n++] = ch[i];
			out[n] = '\0';
		}
	}
}

/* Is v (case-insensitive) one of the "a|b|c" choices? Writes the choice. */
static int
enum_match(const char *ch, const char *v, char *out, size_t outlen)
{
	size_t vl = strlen(v);

	while (ch && *ch) {
		const char *bar = strchr(ch, '|');
		size_t n = bar ? (size_t)(bar - ch) : strlen(ch);

		if (n == vl && strncasecmp(ch, v, n) == 0 && n < outlen) {
			memcpy(out, ch, n);
			out[n] = '\0';
			return 1;
		}
		ch = bar ? bar + 1 : NULL;
	}
	return 0;
}

static int
check_text(const struct tlbot_param *p, const char *v, char *err, size_t errlen)
{
	char nn[64];

	if (p->max <= 0 || (long long)utf8_chars(v) <= p->max)
		return 0;
	noun(p, nn, sizeof(nn));
	tlbot_errf(err, errlen, "%s is too long: %zu characters, at most %lld", nn, utf8_chars(v),
		p->max);
	return -1;
}

static int
check_int(const struct tlbot_param *p, const char *v, struct tlbot_value *val, char *err,
	  size_t errlen)
{
	char how[400], *end;
	long long n;

	errno = 0;
	n = strtoll(v, &end, 10);
	if (*v == '\0' || *end != '\0' || errno != 0 || n < p->min || n > p->max ||
	    !(isdigit((unsigned char)v[0]) || (v[0] == '-' && isdigit((unsigned char)v[1])))) {
		snprintf(how, sizeof(how), "write a whole number from %lld to %lld", p->min, p->max);
		bad(p, v, how, err, errlen);
		return -1;
	}
	val->n = n;
	return 0;
}

static int
check_num(const struct tlbot_param *p, const char *v, struct tlbot_value *val, char *err,
	  size_t errlen)
{
	const char *s = v;
	char *end;
	int digits = 0, dot = 0;

	if (*v == '\0')
		return 0; /* an empty value clears the field */
	if (*s == '-' || *s == '+')
		s++;
	for (; *s; s++) {
		if (isdigit((unsigned char)*s))
			digits++;
		else if (*s == '.' && !dot)
			dot = 1;
		else
			break;
	}
	if ((*s == 'e' || *s == 'E') && digits) {
		s++;
		if (*s == '-' || *s == '+')
			s++;
		while (isdigit((unsigned char)*s))
			s++;
	}
	errno = 0;
	val->d = strtod(v, &end);
	if (*s != '\0' || digits == 0 || *end != '\0' || errno != 0 || !isfinite(val->d)) {
		bad(p, v,
		    "write a plain number such as 12, 0.75, -3.5 or 1e6 (no units, commas or %;"
		    " put the unit in --unit)",
		    err, errlen);
		return -1;
	}
	return 0;
}

/* DATE, DURATION and TIME: read as people write them, normalised. */
static int
check_when(const struct tlbot_param *p, const char **vp, struct tlbot_value *val, time_t now,
	   const char *tz, struct tlbot_checked *c, char *err, size_t errlen)
{
	const char *v = *vp;
	char buf[128], how[400];
	int y, m, d, minute;
	long secs;

	switch (p->type) {
	case TLBOT_P_DATE:
		if (tlbot_when_date(v, now, tz, buf, how, sizeof(how)) != 0)
			break;
		if (tlbot_date_split(buf, &y, &m, &d) != 0 || (*vp = pool_str(c, buf)) == NULL)
			return -1;
		val->n = tlbot_date_days(y, m, d);
		return 0;
	case TLBOT_P_DURATION:
		if (tlbot_when_duration(v, &secs, how, sizeof(how)) != 0)
			break;
		val->n = secs;
		snprintf(buf, sizeof(buf), "%lds", secs);
		return (*vp = pool_str(c, buf)) ? 0 : -1;
	default: /* TLBOT_P_TIME */
		if (tlbot_when_time(v, &minute, how, sizeof(how)) != 0)
			break;
		val->n = minute;
		snprintf(buf, sizeof(buf), "%02d:%02d", minute / 60, minute % 60);
		return (*vp = pool_str(c, buf)) ? 0 : -1;
	}
	bad(p, v, how, err, errlen);
	return -1;
}

static int
check_user(const struct tlbot_param *p, const char *v, char *err, size_t errlen)
{
	/* "@erin", "Erin Hughes", "me": the family resolves names among
	 * the room's members; a full id must be a valid one */
	if ((v[0] == '@' && strchr(v, ':') && !tlbot_is_user_id(v)) || strlen(v) > 255 ||
	    v[0] == '\0') {
		bad(p, v, "write it as @name:server", err, errlen);
		return -1;
	}
	return 0;
}

/* A room id "!abc:server", or (unless p takes ids only) an alias
 * "#name:server". 0 or -1 (err set). */
static int
check_room(const struct tlbot_param *p, const char *v, char *err, size_t errlen)
{
	if (tlbot_mxuri_id_ok(TLBOT_MXURI_ROOM, v) ||
	    (!room_ids_only(p) && tlbot_mxuri_id_ok(TLBOT_MXURI_ALIAS, v)))
		return 0;
	bad(p, v,
	    room_ids_only(p) ? "write it as !abc:server" : "write it as !abc:server or #name:server",
	    err, errlen);
	return -1;
}

static int
check_ref(const struct tlbot_param *p, const char **vp, struct tlbot_value *val,
	  struct tlbot_checked *c, char *err, size_t errlen)
{
	const char *s = *vp, *pre = p->choices ? p->choices : "";
	size_t pl = strlen(pre);
	char buf[128], how[400], *end = NULL;
	long long n;

	if (pl && strncasecmp(s, pre, pl) == 0 && s[pl] == '-')
		s += pl + 1;
	errno = 0;
	n = isdigit((unsigned char)*s) ? strtoll(s, &end, 10) : -1;
	if (n <= 0 || *end != '\0' || errno != 0 || n > 999999999) {
		snprintf(how, sizeof(how), "write it as %s-%s", pre, strcmp(pre, "C") ? "34" : "12");
		bad(p, *vp, how, err, errlen);
		return -1;
	}
	val->n = n;
	snprintf(buf, sizeof(buf), "%s-%lld", pre, n);
	return (*vp = pool_str(c, buf)) ? 0 : -1;
}

static int
check_enum(const struct tlbot_param *p, const char **vp, struct tlbot_checked *c, char *err,
	   size_t errlen)
{
	char buf[128], list[300], nn[64];

	if (enum_match(p->choices, *vp, buf, sizeof(buf)))
		return (*vp = pool_str(c, buf)) ? 0 : -1;
	noun(p, nn, sizeof(nn));
	choices_text(p->choices ? p->choices : "", list, sizeof(list));
	tlbot_errf(err, errlen, "unknown %s '%.*s': use %s%s%s", nn, SHOW_MAX, *vp,
		tlbot_param_is_flag(p) ? p->name : "", tlbot_param_is_flag(p) ? " " : "", list);
	return -1;
}

/* Check one value; *vp may be replaced by normalised text in the pool. */
static int
check_value(const struct tlbot_param *p, const char **vp, struct tlbot_value *val, time_t now,
	    const char *tz, struct tlbot_checked *c, char *err, size_t errlen)
{
	memset(val, 0, sizeof(*val));
	if ((p->mode & TLBOT_NONE_OK) && strcasecmp(*vp, "none") == 0) {
		*vp = "none";
		return 0;
	}
	switch (p->type) {
	case TLBOT_P_TEXT: return check_text(p, *vp, err, errlen);
	case TLBOT_P_INT: return check_int(p, *vp, val, err, errlen);
	case TLBOT_P_NUM: return check_num(p, *vp, val, err, errlen);
	case TLBOT_P_DATE:
	case TLBOT_P_DURATION:
	case TLBOT_P_TIME: return check_when(p, vp, val, now, tz, c, err, errlen);
	case TLBOT_P_ZONE:
		if (strlen(*vp) > 64 || !tlbot_tz_valid(*vp)) {
			tlbot_errf(err, errlen,
				"unknown time zone '%.*s': write an IANA name such as Europe/London",
				SHOW_MAX, *vp);
			return -1;
		}
		return 0;
	case TLBOT_P_USER: return check_user(p, *vp, err, errlen);
	case TLBOT_P_ROOM: return check_room(p, *vp, err, errlen);
	case TLBOT_P_REF: return check_ref(p, vp, val, c, err, errlen);
	case TLBOT_P_ENUM: return check_enum(p, vp, c, err, errlen);
	case TLBOT_P_BOOL:
	default: return 0;
	}
}

static int
has_text_before(const struct tlbot_param *params, const struct tlbot_param *rest)
{
	const struct tlbot_param *p;

	for (p = params; p && p->name; p++)
		if (!tlbot_param_is_flag(p) && p->type == TLBOT_P_TEXT && p != rest)
			return 1;
	return 0;
}

/* The flag spec tlbot_args_bind reads ("due=", "tag=*", "all"), from the
 * flags of params, into out->spec; the number of positionals and of the
 * required ones before the first optional into *npos and *nreq. */
static void
build_spec(const struct tlbot_param *params, struct tlbot_checked *out, size_t *npos,
	   size_t *nreq)
{
	const struct tlbot_param *p;
	size_t nspec = 0;

	for (p = params; p && p->name; p++) {
		if (!tlbot_param_is_flag(p)) {
			(*npos)++;
			if (!(p->mode & TLBOT_OPTIONAL) && *nreq + 1 == *npos)
				(*nreq)++;
			continue;
		}
		if (nspec >= TLBOT_PARSE_MAX_TOKENS)
			break;
		snprintf(out->specbuf[nspec], sizeof(out->specbuf[nspec]), "%s%s", p->name + 2,
			 p->type == TLBOT_P_BOOL ? "" : (p->mode & TLBOT_REPEAT) ? "=*" : "=");
		out->spec[nspec] = out->specbuf[nspec];
		nspec++;
	}
	out->spec[nspec] = NULL;
}

/* The last positional takes the rest of the line: join argv[npos - 1]
 * onwards with spaces into one value. Returns 0, or -1 when it is too long. */
static int
join_rest(struct tlbot_checked *out, size_t npos)
{
	struct tlbot_buf b;
	const char *s;
	size_t i;

	tlbot_buf_init(&b, TLBOT_PARSE_MAX_BODY + 1);
	for (i = npos - 1; i < out->args.argc; i++)
		tlbot_buf_printf(&b, "%s%s", i > npos - 1 ? " " : "", out->args.argv[i]);
	s = pool_str(out, tlbot_buf_str(&b));
	tlbot_buf_release(&b);
	if (s == NULL)
		return -1;
	out->args.argv[npos - 1] = s;
	out->args.argc = npos;
	return 0;
}

int
tlbot_args_check(const struct tlbot_param *params, const struct tlbot_cmdline *cl, size_t first,
		 time_t now, const char *tz, struct tlbot_checked *out, char *err, size_t errlen,
		 int *with_usage)
{
	const struct tlbot_param *p, *rest = rest_param(params);
	size_t npos = 0, nreq = 0, i, j;
	char berr[512];

	*with_usage = 0;
	out->used = 0;
	build_spec(params, out, &npos, &nreq);
	if (join_words(params, cl, first, now, tz, out) != 0) {
		tlbot_errf(err, errlen, "the command is too long");
		return -1;
	}
	if (tlbot_args_bind(&out->cl, 0, out->spec, &out->args, berr, sizeof(berr)) != 0) {
		if (rest && strncmp(berr, "unknown flag", 12) == 0)
			tlbot_errf(err, errlen, "%s; to write -- in text, put the text in quotes", berr);
		else
			tlbot_errf(err, errlen, "%s", berr);
		*with_usage = 1;
		return -1;
	}
	/* the rest of the line */
	if (rest && npos > 0 && out->args.argc > npos && join_rest(out, npos) != 0) {
		tlbot_errf(err, errlen, "the command is too long");
		return -1;
	}
	if (out->args.argc < nreq) {
		char label[96];

		p = positional(params, out->args.argc);
		if (p->type == TLBOT_P_REF || p->type == TLBOT_P_ENUM || p->type == TLBOT_P_USER ||
		    p->type == TLBOT_P_ROOM || p->label)
			tlbot_param_label(p, label, sizeof(label));
		else
			snprintf(label, sizeof(label), "%s", p->name);
		tlbot_errf(err, errlen, "missing %s", label);
		*with_usage = 1;
		return -1;
	}
	for (i = 0; i < out->args.argc; i++) {
		p = positional(params, i);
		if (p == NULL) {
			tlbot_errf(err, errlen, "unexpected argument '%.*s'%s", SHOW_MAX,
				out->args.argv[i],
				has_text_before(params, rest) ? " (quote text with spaces)" : "");
			*with_usage = 1;
			return -1;
		}
		out->argp[i] = p;
		if (check_value(p, &out->args.argv[i], &out->args.val[i], now, tz, out, err, errlen) != 0)
			return -1;
	}
	for (j = 0; j < out->args.nflags; j++) {
		struct tlbot_flag *f = &out->args.flags[j];
		size_t nl = strcspn(f->name, "=");

		p = find_flag(params, f->name, nl);
		if (p == NULL || f->value == NULL)
			continue;
		if (check_value(p, &f->value, &f->v, now, tz, out, err, errlen) != 0)
			return -1;
	}
	return 0;
}

const struct tlbot_value *
tlbot_args_val(const struct tlbot_args *a, size_t i)
{
	return i < a->argc ? &a->val[i] : NULL;
}

const struct tlbot_value *
tlbot_args_flag_val(const struct tlbot_args *a, const char *name)
{
	size_t i, n;

	if (name[0] == '-' && name[1] == '-')
		name += 2;
	n = strcspn(name, "=");
	for (i = a->nflags; i > 0; i--) {
		const struct tlbot_flag *f = &a->flags[i - 1];

		if (strcspn(f->name, "=") == n && strncmp(f->name, name, n) == 0)
			return f->value ? &f->v : NULL;
	}
	return NULL;
}
