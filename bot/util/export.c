/* Export writers: CSV (RFC 4180), Markdown cells, exact numbers. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tlbot/export.h"

void
tlbot_csv_init(struct tlbot_csv *c, struct tlbot_buf *out, int flags)
{
	c->out = out;
	c->flags = flags;
	c->ncell = 0;
}

/* Append a cell separator if this is not the first cell. 0 or -1. */
static int
sep(struct tlbot_csv *c)
{
	return c->ncell++ ? tlbot_buf_addc(c->out, ',') : 0;
}

int
tlbot_csv_text(struct tlbot_csv *c, const char *s)
{
	size_t mark = c->out->len;
	int guard, quote;
	const char *p;

	if (sep(c) != 0)
		return -1;
	if (s == NULL || *s == '\0')
		return 0;
	guard = (c->flags & TLBOT_CSV_FORMULA_GUARD) && strchr("=+-@\t\r", s[0]) != NULL;
	quote = strpbrk(s, ",\"\r\n") != NULL;
	if (quote && tlbot_buf_addc(c->out, '"') != 0)
		goto full;
	if (guard && tlbot_buf_addc(c->out, '\'') != 0)
		goto full;
	for (p = s; *p; p++) {
		if (*p == '"' && tlbot_buf_addc(c->out, '"') != 0)
			goto full;
		if (tlbot_buf_addc(c->out, *p) != 0)
			goto full;
	}
	if (quote && tlbot_buf_addc(c->out, '"') != 0)
		goto full;
	return 0;
full:
	/* leave the buffer as it was before this cell */
	c->out->len = mark;
	if (c->out->data)
		c->out->data[mark] = '\0';
	return -1;
}

int
tlbot_csv_plain(struct tlbot_csv *c, const char *s)
{
	int flags = c->flags, rc;

	c->flags &= ~TLBOT_CSV_FORMULA_GUARD;
	rc = tlbot_csv_text(c, s);
	c->flags = flags;
	return rc;
}

int
tlbot_csv_number(struct tlbot_csv *c, double v)
{
	char num[40];

	if (tlbot_fmt_double(v, num, sizeof(num)) != 0)
		return -1;
	if (sep(c) != 0)
		return -1;
	return tlbot_buf_adds(c->out, num);
}

int
tlbot_csv_end_row(struct tlbot_csv *c)
{
	c->ncell = 0;
	return tlbot_buf_adds(c->out, "\r\n");
}

void
tlbot_csv_reader_init(struct tlbot_csv_reader *r, const char *data, size_t len)
{
	r->p = data;
	r->end = data + len;
	r->row_end = 0;
	if (len >= 3 && memcmp(data, TLBOT_CSV_BOM, 3) == 0)
		r->p += 3;
}

/* Consume a line ending at r->p if there is one; set row_end. */
static void
eat_eol(struct tlbot_csv_reader *r)
{
	if (r->p < r->end && *r->p == '\r')
		r->p++;
	if (r->p < r->end && *r->p == '\n')
		r->p++;
	r->row_end = 1;
}

int
tlbot_csv_read_field(struct tlbot_csv_reader *r, struct tlbot_buf *field)
{
	tlbot_buf_reset(field);
	if (tlbot_buf_adds(field, "") != 0)
		return -1;
	r->row_end = 0;
	if (r->p >= r->end)
		return 0;
	if (*r->p == '"') {
		r->p++;
		for (;;) {
			if (r->p >= r->end)
				return -1; /* unterminated */
			if (*r->p == '"') {
				if (r->p + 1 < r->end && r->p[1] == '"') {
					if (tlbot_buf_addc(field, '"') != 0)
						return -1;
					r->p += 2;
					continue;
				}
				r->p++;
				break;
			}
			if (tlbot_buf_addc(field, *r->p++) != 0)
				return -1;
		}
		if (r->p >= r->end) {
			r->row_end = 1;
			return 1;
		}
		if (*r->p == ',') {
			r->p++;
			return 1;
		}
		if (*r->p == '\r' || *r->p == '\n') {
			eat_eol(r);
			return 1;
		}
		return -1; /* text after the closing quote */
	}
	while (r->p < r->end && *r->p != ',' && *r->p != '\r' && *r->p != '\n') {
		if (*r->p == '"')
			return -1;
		if (tlbot_buf_addc(field, *r->p++) != 0)
			return -1;
	}
	if (r->p >= r->end)
		r->row_end = 1;
	else if (*r->p == ',')
		r->p++;
	else
		eat_eol(r);
	return 1;
}

int
tlbot_fmt_double(double v, char *out, size_t outlen)
{
	int prec;

	if (!isfinite(v) || outlen < 32)
		return -1;
	for (prec = 15; prec <= 17; prec++) {
		snprintf(out, outlen, "%.*g", prec, v);
		if (strtod(out, NULL) == v)
			break;
	}
	if (strcmp(out, "-0") == 0)
		snprintf(out, outlen, "0");
	return 0;
}

int
tlbot_md_cell(struct tlbot_buf *b, const char *s)
{
	size_t mark = b->len;
	const char *p;

	if (s == NULL)
		return 0;
	for (p = s; *p; p++) {
		int rc;

		if (*p == '\r' && p[1] == '\n')
			continue;
		if (*p == '\n' || *p == '\r')
			rc = tlbot_buf_adds(b, "<br>");
		else if (strchr("\\`*_[]<>|~&", *p))
			rc = tlbot_buf_addc(b, '\\') == 0 ? tlbot_buf_addc(b, *p) : -1;
		else
			rc = tlbot_buf_addc(b, *p);
		if (rc != 0) {
			b->len = mark;
			if (b->data)
				b->data[mark] = '\0';
			return -1;
		}
	}
	return 0;
}
