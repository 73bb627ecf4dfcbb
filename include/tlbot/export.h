/* Writers for exported data: CSV (RFC 4180, UTF-8), Markdown table cells,
 * and numbers that read back exactly. Pure functions over tlbot_buf; JSON
 * exports use jansson directly. A small CSV reader is here too, so exports
 * can be checked (and later imported) with the same rules. */
#ifndef TLBOT_EXPORT_H
#define TLBOT_EXPORT_H

#include <stddef.h>

#include "tlbot/buf.h"

/* UTF-8 byte order mark: spreadsheets (Excel) need it to read a CSV file
 * as UTF-8 rather than the local code page. */
#define TLBOT_CSV_BOM "\xEF\xBB\xBF"

/* tlbot_csv_init flags */
#define TLBOT_CSV_FORMULA_GUARD 1 /* text cells starting with = + - @ TAB CR
				   * get a leading ' so a spreadsheet shows
				   * them as text instead of running them as
				   * formulas (OWASP "CSV injection") */

struct tlbot_csv {
	struct tlbot_buf *out; /* borrowed */
	int flags;
	size_t ncell;          /* cells written in the current row */
};

/* Write rows into out (borrowed; its cap bounds the file). */
void tlbot_csv_init(struct tlbot_csv *c, struct tlbot_buf *out, int flags);
/* One cell of text (NULL or "" = empty cell), quoted when it holds a comma,
 * a double quote, CR or LF (quotes doubled). 0, or -1 when out is full. */
int tlbot_csv_text(struct tlbot_csv *c, const char *s);
/* One cell of text the program controls (ids, user ids, dates, states):
 * quoted like tlbot_csv_text but never formula-guarded. 0 or -1. */
int tlbot_csv_plain(struct tlbot_csv *c, const char *s);
/* One numeric cell, never guarded (see tlbot_fmt_double). 0 or -1. */
int tlbot_csv_number(struct tlbot_csv *c, double v);
/* End the row with CRLF. 0 or -1. */
int tlbot_csv_end_row(struct tlbot_csv *c);

/* A reader over len bytes of CSV (a leading BOM is skipped). */
struct tlbot_csv_reader {
	const char *p, *end;
	int row_end;            /* set by read_field: the field ended its row */
};
void tlbot_csv_reader_init(struct tlbot_csv_reader *r, const char *data, size_t len);
/* Read the next field into field (reset first). Returns 1 when a field was
 * read (r->row_end tells whether it ended a row), 0 at the end of input,
 * -1 on malformed input (a quote inside an unquoted field, an unterminated
 * quoted field, text after a closing quote) or a full buffer. */
int tlbot_csv_read_field(struct tlbot_csv_reader *r, struct tlbot_buf *field);

/* The shortest decimal text ("%.15g" up to "%.17g") that reads back as
 * exactly v. Returns 0, or -1 for NaN/infinity or a too small out. */
int tlbot_fmt_double(double v, char *out, size_t outlen);

/* Append s as one Markdown (GFM) table cell's content: Markdown and HTML
 * punctuation (\ ` * _ [ ] < > | ~ &) backslash-escaped, each line break
 * as <br>. NULL appends nothing. 0 or -1. */
int tlbot_md_cell(struct tlbot_buf *b, const char *s);

#endif
