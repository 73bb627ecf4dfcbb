/* Message builder: plain body, HTML formatted_body and m.mentions. */
#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "tlbot/msg.h"

void
tlbot_msg_init(struct tlbot_msg *m)
{
	memset(m, 0, sizeof(*m));
	tlbot_buf_init(&m->plain, TLBOT_MSG_MAX);
	tlbot_buf_init(&m->html, TLBOT_MSG_MAX);
}

void
tlbot_msg_release(struct tlbot_msg *m)
{
	size_t i;

	tlbot_buf_release(&m->plain);
	tlbot_buf_release(&m->html);
	for (i = 0; i < m->nmentions; i++)
		free(m->mentions[i]);
	m->nmentions = 0;
	m->failed = 0;
}

static void
check(struct tlbot_msg *m, int rc)
{
	if (rc != 0)
		m->failed = 1;
}

/* Does the HTML so far end with a block (a list, list item, table, heading,
 * paragraph or pre)? A <br/> there opens an empty gap in clients. */
static int
after_block(const struct tlbot_msg *m)
{
	static const char *const tags[] = {"</ul>", "</ol>", "<ul>", "<ol>", "</li>", "<li>",
					   "</table>", "</p>", "</pre>", "</h3>", "</h4>",
					   "</blockquote>", NULL};
	const char *h = m->html.data;
	size_t i, n = m->html.len;

	if (h == NULL || n == 0)
		return 1; /* nothing yet: a leading <br/> is a gap too */
	for (i = 0; tags[i]; i++) {
		size_t l = strlen(tags[i]);

		if (n >= l && memcmp(h + n - l, tags[i], l) == 0)
			return 1;
	}
	return 0;
}

/* Text right after a closed list or table goes in a paragraph: clients
 * (Qt's rich text in nheko) otherwise run it into the block before, and an
 * inline <code> there becomes a full-width bar. Closed by the next block
 * or at the end (tlbot_msg_content_json). */
static void
para(struct tlbot_msg *m)
{
	static const char *const tags[] = {"</ul>", "</ol>", "</table>", "</pre>", "</blockquote>",
					   NULL};
	const char *h = m->html.data;
	size_t i, n = m->html.len;

	if (m->open_p || h == NULL)
		return;
	for (i = 0; tags[i]; i++) {
		size_t l = strlen(tags[i]);

		if (n >= l && memcmp(h + n - l, tags[i], l) == 0) {
			check(m, tlbot_buf_adds(&m->html, "<p>"));
			m->open_p = 1;
			return;
		}
	}
}

void
tlbot_msg_text(struct tlbot_msg *m, const char *s)
{
	check(m, tlbot_buf_adds(&m->plain, s));
	/* a line break right after a block is the block's own */
	while (*s == '\n' && after_block(m))
		s++;
	if (*s)
		para(m);
	check(m, tlbot_buf_add_html(&m->html, s, 1));
}

void
tlbot_msg_text_code(struct tlbot_msg *m, const char *s)
{
	const char *p = s;

	while (*p) {
		const char *open = strchr(p, '`'), *close = open ? strchr(open + 1, '`') : NULL;
		struct tlbot_buf t;

		if (open == NULL || close == NULL || close == open + 1) {
			tlbot_msg_text(m, p);
			return;
		}
		tlbot_buf_init(&t, TLBOT_MSG_MAX);
		check(m, tlbot_buf_add(&t, p, (size_t)(open - p)));
		tlbot_msg_text(m, tlbot_buf_str(&t));
		tlbot_buf_reset(&t);
		check(m, tlbot_buf_add(&t, open + 1, (size_t)(close - open - 1)));
		tlbot_msg_code(m, tlbot_buf_str(&t));
		tlbot_buf_release(&t);
		p = close + 1;
	}
}

void
tlbot_msg_textf(struct tlbot_msg *m, const char *fmt, ...)
{
	struct tlbot_buf t;
	va_list ap;

	tlbot_buf_init(&t, TLBOT_MSG_MAX);
	va_start(ap, fmt);
	check(m, tlbot_buf_vprintf(&t, fmt, ap));
	va_end(ap);
	tlbot_msg_text(m, tlbot_buf_str(&t));
	tlbot_buf_release(&t);
}

void
tlbot_msg_html(struct tlbot_msg *m, const char *html)
{
	struct tlbot_buf *h = &m->html;
	static const char *const inl[] = {"<b>", "</b>", "<i>", "</i>", "<code>", "</code>", "<a ",
					  "</a>", "<br", "<span", "</span>", "<u>", "</u>", "<em>",
					  "</em>", "<strong>", "</strong>", "<del>", "</del>", "<sup>",
					  "</sup>", "<sub>", "</sub>", NULL};
	size_t i;

	/* an open paragraph ends where a block (or its container) does */
	if (m->open_p && html[0] == '<') {
		for (i = 0; inl[i]; i++)
			if (strncmp(html, inl[i], strlen(inl[i])) == 0)
				break;
		if (inl[i] == NULL) {
			check(m, tlbot_buf_adds(h, "</p>"));
			m->open_p = 0;
		}
	} else if (html[0] != '<') {
		para(m);
	}
	/* one list, not two: "</ul><ul>" (and <ol>) joined */
	if ((strcmp(html, "<ul>") == 0 || strcmp(html, "<ol>") == 0) && h->len >= 5 &&
	    memcmp(h->data + h->len - 5, strcmp(html, "<ul>") == 0 ? "</ul>" : "</ol>", 5) == 0) {
		h->len -= 5;
		h->data[h->len] = '\0';
		return;
	}
	/* a block does not follow a line break */
	if (html[0] == '<' && (strncmp(html, "<ul", 3) == 0 || strncmp(html, "<ol", 3) == 0 ||
			       strncmp(html, "<table", 6) == 0 || strncmp(html, "<pre", 4) == 0 ||
			       strncmp(html, "<p>", 3) == 0 || strncmp(html, "</li>", 5) == 0 ||
			       strncmp(html, "</ul>", 5) == 0 || strncmp(html, "</ol>", 5) == 0))
		while (h->len >= 5 && memcmp(h->data + h->len - 5, "<br/>", 5) == 0) {
			h->len -= 5;
			h->data[h->len] = '\0';
		}
	check(m, tlbot_buf_adds(h, html));
}

void
tlbot_msg_html_text(struct tlbot_msg *m, const char *s)
{
	check(m, tlbot_buf_add_html(&m->html, s, 1));
}

void
tlbot_msg_plain(struct tlbot_msg *m, const char *s)
{
	check(m, tlbot_buf_adds(&m->plain, s));
}

static void
wrapped(struct tlbot_msg *m, const char *open, const char *s, const char *close)
{
	para(m);
	check(m, tlbot_buf_adds(&m->html, open));
	tlbot_msg_text(m, s);
	check(m, tlbot_buf_adds(&m->html, close));
}

void
tlbot_msg_bold(struct tlbot_msg *m, const char *s)
{
	wrapped(m, "<b>", s, "</b>");
}

void
tlbot_msg_italic(struct tlbot_msg *m, const char *s)
{
	wrapped(m, "<i>", s, "</i>");
}

void
tlbot_msg_code(struct tlbot_msg *m, const char *s)
{
	wrapped(m, "<code>", s, "</code>");
}

/* Who names people on this thread (the context a command or job runs in
 * sets it): a display name for an id, or nothing. */
static _Thread_local tlbot_msg_namer_fn namer;
static _Thread_local void *namer_arg;

void
tlbot_msg_set_namer(tlbot_msg_namer_fn fn, void *arg)
{
	namer = fn;
	namer_arg = arg;
}

void *
tlbot_msg_namer_arg(void)
{
	return namer_arg;
}

/* A matrix.to pill for user_id: the person's display name as the link text
 * and in the body when they have one of their own, else the id; the href
 * percent-encodes the id. */
static void
pill(struct tlbot_msg *m, const char *user_id)
{
	char name[TLBOT_MSG_NAME_MAX];
	const char *label = user_id;

	if (namer && namer(namer_arg, user_id, name, sizeof(name)) == 0 && name[0])
		label = name;
	check(m, tlbot_buf_adds(&m->plain, label));
	para(m);
	check(m, tlbot_buf_adds(&m->html, "<a href=\"https://matrix.to/#/"));
	check(m, tlbot_buf_add_html(&m->html, user_id, 0));
	check(m, tlbot_buf_adds(&m->html, "\">"));
	check(m, tlbot_buf_add_html(&m->html, label, 0));
	check(m, tlbot_buf_adds(&m->html, "</a>"));
}

void
tlbot_msg_mention(struct tlbot_msg *m, const char *user_id)
{
	size_t i;

	pill(m, user_id);
	for (i = 0; i < m->nmentions; i++)
		if (strcmp(m->mentions[i], user_id) == 0)
			return;
	if (m->nmentions < TLBOT_MSG_MAX_MENTIONS) {
		m->mentions[m->nmentions] = strdup(user_id);
		if (m->mentions[m->nmentions])
			m->nmentions++;
		else
			m->failed = 1;
	}
}

void
tlbot_msg_user(struct tlbot_msg *m, const char *user_id)
{
	pill(m, user_id);
}

void
tlbot_msg_link(struct tlbot_msg *m, const char *label, const char *href, const char *title)
{
	check(m, tlbot_buf_adds(&m->plain, label));
	para(m);
	check(m, tlbot_buf_adds(&m->html, "<a href=\""));
	check(m, tlbot_buf_add_html(&m->html, href, 0));
	if (title) {
		check(m, tlbot_buf_adds(&m->html, "\" title=\""));
		check(m, tlbot_buf_add_html(&m->html, title, 0));
	}
	check(m, tlbot_buf_adds(&m->html, "\">"));
	check(m, tlbot_buf_add_html(&m->html, label, 0));
	check(m, tlbot_buf_adds(&m->html, "</a>"));
}

void
tlbot_msg_br(struct tlbot_msg *m)
{
	check(m, tlbot_buf_addc(&m->plain, '\n'));
	if (!after_block(m))
		check(m, tlbot_buf_adds(&m->html, "<br/>"));
}

void
tlbot_msg_nl(struct tlbot_msg *m)
{
	static const char *const blocks[] = { "</ul>", "<ul>", "</ol>", "</li>", "</p>", "</pre>",
					      "</table>", NULL };
	size_t i, n = m->html.len;

	if (m->plain.len > 0 && m->plain.data[m->plain.len - 1] != '\n')
		check(m, tlbot_buf_addc(&m->plain, '\n'));
	if (n == 0)
		return;
	for (i = 0; blocks[i]; i++) {
		size_t k = strlen(blocks[i]);

		if (n >= k && memcmp(m->html.data + n - k, blocks[i], k) == 0)
			return;
	}
	check(m, tlbot_buf_adds(&m->html, "<br/>"));
}

char *
tlbot_msg_content_json(const struct tlbot_msg *m, const char *msgtype)
{
	json_t *c, *ids;
	char *out;
	size_t i, hlen;

	if (m->failed)
		return NULL;
	/* no line break at the very end: clients show it as a gap */
	hlen = m->html.len;
	while (hlen >= 5 && memcmp(m->html.data + hlen - 5, "<br/>", 5) == 0)
		hlen -= 5;
	ids = json_array();
	for (i = 0; ids && i < m->nmentions; i++)
		json_array_append_new(ids, json_string(m->mentions[i]));
	if (m->open_p) {
		struct tlbot_buf t;

		tlbot_buf_init(&t, TLBOT_MSG_MAX + 8);
		if ((hlen && tlbot_buf_add(&t, m->html.data, hlen) != 0) ||
		    tlbot_buf_adds(&t, "</p>") != 0) {
			tlbot_buf_release(&t);
			json_decref(ids);
			return NULL;
		}
		c = json_pack("{s:s, s:s, s:s, s:s, s:{s:o}}", "msgtype", msgtype, "body",
			      tlbot_buf_str(&m->plain), "format", "org.matrix.custom.html",
			      "formatted_body", tlbot_buf_str(&t), "m.mentions", "user_ids", ids);
		tlbot_buf_release(&t);
	} else {
		c = json_pack("{s:s, s:s, s:s, s:s#, s:{s:o}}", "msgtype", msgtype, "body",
			      tlbot_buf_str(&m->plain), "format", "org.matrix.custom.html",
			      "formatted_body", hlen ? m->html.data : "", hlen, "m.mentions",
			      "user_ids", ids);
	}
	if (c == NULL)
		return NULL;
	if (m->room_mention)
		json_object_set_new(json_object_get(c, "m.mentions"), "room", json_true());
	out = json_dumps(c, JSON_COMPACT);
	json_decref(c);
	/* the whole event must fit in 64 KiB with its relation and envelope */
	if (out && strlen(out) > TLBOT_MSG_MAX + 2048) {
		free(out);
		return NULL;
	}
	return out;
}
