/* Growable buffer with a hard cap; see include/tlbot/buf.h. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tlbot/buf.h"

void
tlbot_buf_init(struct tlbot_buf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->alloc = 0;
	b->max = max;
}

void
tlbot_buf_release(struct tlbot_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->alloc = 0;
}

void
tlbot_buf_reset(struct tlbot_buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

/* Make room for extra more bytes plus the NUL. Returns 0 or -1. */
static int
grow(struct tlbot_buf *b, size_t extra)
{
	size_t need, n;
	char *p;

	if (extra > b->max || b->len > b->max - extra)
		return -1;
	need = b->len + extra + 1;
	if (need <= b->alloc)
		return 0;
	n = b->alloc ? b->alloc : 64;
	while (n < need)
		n *= 2;
	if (n > b->max + 1)
		n = b->max + 1;
	p = realloc(b->data, n);
	if (p == NULL)
		return -1;
	b->data = p;
	b->alloc = n;
	return 0;
}

int
tlbot_buf_add(struct tlbot_buf *b, const void *data, size_t len)
{
	if (grow(b, len) != 0)
		return -1;
	if (len)
		memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
	return 0;
}

int
tlbot_buf_adds(struct tlbot_buf *b, const char *s)
{
	return tlbot_buf_add(b, s, strlen(s));
}

int
tlbot_buf_addc(struct tlbot_buf *b, char c)
{
	return tlbot_buf_add(b, &c, 1);
}

int
tlbot_buf_vprintf(struct tlbot_buf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	int n;

	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0 || grow(b, (size_t)n) != 0)
		return -1;
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return 0;
}

int
tlbot_buf_printf(struct tlbot_buf *b, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = tlbot_buf_vprintf(b, fmt, ap);
	va_end(ap);
	return rc;
}

int
tlbot_buf_add_html(struct tlbot_buf *b, const char *s, int br)
{
	size_t start = b->len;
	const char *run = s;

	for (; *s; s++) {
		const char *rep = NULL;

		switch (*s) {
		case '&': rep = "&amp;"; break;
		case '<': rep = "&lt;"; break;
		case '>': rep = "&gt;"; break;
		case '"': rep = "&quot;"; break;
		case '\'': rep = "&#39;"; break;
		case '\n': rep = br ? "<br/>" : NULL; break;
		default: break;
		}
		if (rep == NULL)
			continue;
		if (tlbot_buf_add(b, run, (size_t)(s - run)) != 0 || tlbot_buf_adds(b, rep) != 0)
			goto fail;
		run = s + 1;
	}
	if (tlbot_buf_add(b, run, (size_t)(s - run)) != 0)
		goto fail;
	return 0;
fail:
	b->len = start;
	if (b->data)
		b->data[start] = '\0';
	return -1;
}

const char *
tlbot_buf_str(const struct tlbot_buf *b)
{
	return b->data ? b->data : "";
}

char *
tlbot_buf_detach(struct tlbot_buf *b)
{
	char *p = b->data;

	if (p == NULL)
		p = strdup("");
	b->data = NULL;
	b->len = 0;
	b->alloc = 0;
	return p;
}

void
tlbot_errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}
