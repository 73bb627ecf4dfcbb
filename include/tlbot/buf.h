/* Growable, always NUL-terminated byte buffer with a hard size cap. */
#ifndef TLBOT_BUF_H
#define TLBOT_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct tlbot_buf {
	char *data;    /* owned; NULL until the first append; always NUL-terminated after it */
	size_t len;    /* bytes used, excluding the NUL */
	size_t alloc;  /* bytes allocated */
	size_t max;    /* hard cap on len; an append past it fails */
};

/* Initialise an empty buffer that may grow to at most max bytes. */
void tlbot_buf_init(struct tlbot_buf *b, size_t max);
/* Free the storage; the buffer is empty again and reusable. */
void tlbot_buf_release(struct tlbot_buf *b);
/* Truncate to zero length (keeps storage). */
void tlbot_buf_reset(struct tlbot_buf *b);

/* Appends return 0, or -1 when the cap would be exceeded or memory ran out
 * (the buffer is then unchanged). */
int tlbot_buf_add(struct tlbot_buf *b, const void *data, size_t len);
int tlbot_buf_adds(struct tlbot_buf *b, const char *s);
int tlbot_buf_addc(struct tlbot_buf *b, char c);
int tlbot_buf_printf(struct tlbot_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int tlbot_buf_vprintf(struct tlbot_buf *b, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
/* Append s HTML-escaped (& < > " '); newlines become <br/> when br is set. */
int tlbot_buf_add_html(struct tlbot_buf *b, const char *s, int br);

/* The contents as a C string: never NULL ("" when empty). Borrowed. */
const char *tlbot_buf_str(const struct tlbot_buf *b);
/* Hand the contents over: caller frees; the buffer is left empty. Never NULL
 * unless out of memory. */
char *tlbot_buf_detach(struct tlbot_buf *b);

/* Write a formatted one-line reason into err (errlen bytes, always
 * NUL-terminated; a longer reason is shortened, as a reason may be).
 * Nothing when err is NULL or errlen 0. The parsers' and checkers' way
 * of saying why they refused. */
void tlbot_errf(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
