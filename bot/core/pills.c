/* Pills: Element writes a mention as the person's display name in the
 * plain body and as a matrix.to link (or a matrix: URI) in formatted_body.
 * Commands read user ids, so the display names are put back as ids before
 * parsing. Links are read by mxuri.c, as in parse.c's mentions. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tlbot/buf.h"
#include "tlbot/parse.h"

#include "mxuri.h"

#define PILL_MAX_TEXT 512

/* Decode the few entities an HTML serialiser emits in text. */
static void
html_text(const char *s, size_t n, char *out, size_t outlen)
{
	static const struct { const char *ent; char c; } ents[] = {
		{ "&amp;", '&' }, { "&lt;", '<' }, { "&gt;", '>' }, { "&quot;", '"' },
		{ "&#39;", '\'' }, { "&#x27;", '\'' }, { "&apos;", '\'' }, { "&nbsp;", ' ' },
	};
	size_t o = 0, i, k;

	for (i = 0; i < n && o + 1 < outlen; ) {
		int matched = 0;

		if (s[i] == '&') {
			for (k = 0; k < sizeof(ents) / sizeof(ents[0]); k++) {
				size_t l = strlen(ents[k].ent);

				if (i + l <= n && strncasecmp(s + i, ents[k].ent, l) == 0) {
					out[o++] = ents[k].c;
					i += l;
					matched = 1;
					break;
				}
			}
		}
		if (!matched) {
			if (s[i] == '<') { /* nested markup inside the link: drop the tag */
				while (i < n && s[i] != '>')
					i++;
				i++;
				continue;
			}
			out[o++] = s[i++];
		}
	}
	out[o] = '\0';
}

/* The user id an href value (up to its closing quote, at most n bytes)
 * points at, into out; 0 or -1. */
static int
href_user(const char *v, size_t n, char *out, size_t outlen)
{
	struct tlbot_mxuri uri;
	size_t i, l;

	for (i = 0; i < n && v[i] != '"' && v[i] != '\''; i++)
		;
	if (tlbot_mxuri_parse(v, i, &uri) != 0 || uri.kind != TLBOT_MXURI_USER)
		return -1;
	l = strlen(uri.id);
	if (l >= outlen)
		return -1;
	memcpy(out, uri.id, l + 1);
	return 0;
}

char *
tlbot_pills_to_ids(const char *body, const char *html)
{
	struct tlbot_buf out;
	const char *p = html, *rest = body;
	int changed = 0;

	if (body == NULL || html == NULL)
		return NULL;
	tlbot_buf_init(&out, strlen(body) + 64 * 256);
	while ((p = strstr(p, "<a ")) != NULL) {
		const char *tag_end = strchr(p, '>'), *h, *close, *hit;
		char id[300], text[PILL_MAX_TEXT];
		char q;

		if (tag_end == NULL)
			break;
		h = strstr(p, "href=");
		close = strstr(tag_end, "</a>");
		if (h == NULL || h > tag_end || close == NULL) {
			p = tag_end;
			continue;
		}
		h += 5;
		q = *h == '"' || *h == '\'' ? *h++ : 0;
		if (href_user(h, (size_t)(tag_end - h), id, sizeof(id)) != 0 || q == 0) {
			p = close;
			continue;
		}
		html_text(tag_end + 1, (size_t)(close - tag_end - 1), text, sizeof(text));
		p = close + 4;
		if (text[0] == '\0' || strcmp(text, id) == 0)
			continue;
		hit = strstr(rest, text);
		if (hit == NULL)
			continue;
		if (tlbot_buf_add(&out, rest, (size_t)(hit - rest)) != 0 || tlbot_buf_adds(&out, id) != 0)
			goto fail;
		rest = hit + strlen(text);
		changed = 1;
	}
	if (!changed || tlbot_buf_adds(&out, rest) != 0)
		goto fail;
	return tlbot_buf_detach(&out);
fail:
	tlbot_buf_release(&out);
	return NULL;
}
