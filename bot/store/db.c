/* The store API of command families (see command.h): bound parameters
 * only, and one error contract: a failed call marks the context, so the
 * batch or job it runs in is rolled back and retried. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tlbot/command.h"
#include "tlbot/ctx.h"

/* Mark ctx with the statement that failed (its first words: SQL text is a
 * literal of the caller, never user data). Returns -1. */
static int
failed(struct tlbot_ctx *ctx, const char *sql)
{
	char what[96];
	size_t n = strcspn(sql, "\n");

	if (n > 80)
		n = 80;
	snprintf(what, sizeof(what), "\"%.*s%s\"", (int)n, sql, strlen(sql) > n ? "…" : "");
	return tlbot_db_error(ctx, what);
}

/* Bind parameter col of s: type is a letter of the types strings (see
 * command.h), its value(s) taken from ap. An SQLite result code. */
static int
bind1(sqlite3_stmt *s, int col, int type, va_list *ap)
{
	switch (type) {
	case 'i':
		return sqlite3_bind_int64(s, col, va_arg(*ap, int64_t));
	case 'd':
		return sqlite3_bind_double(s, col, va_arg(*ap, double));
	case 'n': {
		int has = va_arg(*ap, int);
		double v = va_arg(*ap, double);

		return has ? sqlite3_bind_double(s, col, v) : sqlite3_bind_null(s, col);
	}
	default: {
		const char *v = va_arg(*ap, const char *);

		return v ? sqlite3_bind_text(s, col, v, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(s, col);
	}
	}
}

static sqlite3_stmt *
prepv(struct tlbot_ctx *ctx, const char *sql, const char *types, va_list ap)
{
	sqlite3_stmt *s = NULL;
	va_list aq;
	int i, rc = SQLITE_OK;

	if (sqlite3_prepare_v2(tlbot_ctx_db(ctx), sql, -1, &s, NULL) != SQLITE_OK) {
		failed(ctx, sql);
		sqlite3_finalize(s);
		return NULL;
	}
	va_copy(aq, ap);
	for (i = 0; types && types[i] && rc == SQLITE_OK; i++)
		rc = bind1(s, i + 1, types[i], &aq);
	va_end(aq);
	if (rc != SQLITE_OK) {
		failed(ctx, sql);
		sqlite3_finalize(s);
		return NULL;
	}
	return s;
}

int
tlbot_db_exec(struct tlbot_ctx *ctx, const char *sql, const char *types, ...)
{
	sqlite3_stmt *s;
	va_list ap;
	int rc;

	va_start(ap, types);
	s = prepv(ctx, sql, types, ap);
	va_end(ap);
	if (s == NULL)
		return -1;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		;
	if (rc != SQLITE_DONE)
		failed(ctx, sql);
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* Step s once for a single value. 0 row, 1 none, -1 error (ctx marked). */
static int
one(struct tlbot_ctx *ctx, sqlite3_stmt *s, const char *sql)
{
	int rc = sqlite3_step(s);

	if (rc == SQLITE_ROW)
		return 0;
	if (rc == SQLITE_DONE)
		return 1;
	return failed(ctx, sql);
}

int
tlbot_db_int(struct tlbot_ctx *ctx, int64_t *out, const char *sql, const char *types, ...)
{
	sqlite3_stmt *s;
	va_list ap;
	int rc;

	*out = 0;
	va_start(ap, types);
	s = prepv(ctx, sql, types, ap);
	va_end(ap);
	if (s == NULL)
		return -1;
	rc = one(ctx, s, sql);
	if (rc == 0)
		*out = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return rc;
}

int
tlbot_db_text(struct tlbot_ctx *ctx, char **out, const char *sql, const char *types, ...)
{
	sqlite3_stmt *s;
	va_list ap;
	int rc;

	*out = NULL;
	va_start(ap, types);
	s = prepv(ctx, sql, types, ap);
	va_end(ap);
	if (s == NULL)
		return -1;
	rc = one(ctx, s, sql);
	if (rc == 0 && sqlite3_column_type(s, 0) != SQLITE_NULL) {
		*out = strdup((const char *)sqlite3_column_text(s, 0));
		if (*out == NULL)
			rc = tlbot_db_error(ctx, "out of memory reading a row");
	}
	sqlite3_finalize(s);
	return rc;
}

int64_t
tlbot_db_changes(struct tlbot_ctx *ctx)
{
	return sqlite3_changes64(tlbot_ctx_db(ctx));
}

int
tlbot_db_ids(struct tlbot_ctx *ctx, int64_t *ids, int max, const char *sql, const char *types,
	     ...)
{
	struct tlbot_db_rows q;
	va_list ap;
	int n = 0, rc = 0;

	q.ctx = ctx;
	va_start(ap, types);
	q.stmt = prepv(ctx, sql, types, ap);
	va_end(ap);
	if (q.stmt == NULL)
		return -1;
	while (n < max && (rc = tlbot_db_next(&q)) > 0)
		ids[n++] = tlbot_db_col_int(&q, 0);
	tlbot_db_done(&q);
	return rc < 0 ? -1 : n;
}

int64_t
tlbot_db_last_id(struct tlbot_ctx *ctx)
{
	return sqlite3_last_insert_rowid(tlbot_ctx_db(ctx));
}

int
tlbot_db_query(struct tlbot_ctx *ctx, struct tlbot_db_rows *q, const char *sql, const char *types,
	       ...)
{
	va_list ap;
	int rc;

	va_start(ap, types);
	rc = tlbot_db_vquery(ctx, q, sql, types, ap);
	va_end(ap);
	return rc;
}

int
tlbot_db_vquery(struct tlbot_ctx *ctx, struct tlbot_db_rows *q, const char *sql,
		const char *types, va_list ap)
{
	q->ctx = ctx;
	q->stmt = prepv(ctx, sql, types, ap);
	return q->stmt ? 0 : -1;
}

int
tlbot_db_bind(struct tlbot_db_rows *q, int i, int type, ...)
{
	va_list ap;
	int rc;

	if (q->stmt == NULL)
		return -1;
	va_start(ap, type);
	rc = bind1(q->stmt, i, type, &ap);
	va_end(ap);
	if (rc != SQLITE_OK)
		return failed(q->ctx, sqlite3_sql(q->stmt) ? sqlite3_sql(q->stmt) : "bind");
	return 0;
}

int
tlbot_db_next(struct tlbot_db_rows *q)
{
	int rc;

	if (q->stmt == NULL)
		return -1;
	rc = sqlite3_step(q->stmt);
	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	failed(q->ctx, sqlite3_sql(q->stmt) ? sqlite3_sql(q->stmt) : "query");
	return -1;
}

void
tlbot_db_done(struct tlbot_db_rows *q)
{
	sqlite3_finalize(q->stmt);
	q->stmt = NULL;
}

int64_t
tlbot_db_col_int(const struct tlbot_db_rows *q, int i)
{
	return sqlite3_column_int64(q->stmt, i);
}

double
tlbot_db_col_double(const struct tlbot_db_rows *q, int i)
{
	return sqlite3_column_double(q->stmt, i);
}

const char *
tlbot_db_col_text(const struct tlbot_db_rows *q, int i)
{
	return (const char *)sqlite3_column_text(q->stmt, i);
}

int
tlbot_db_col_null(const struct tlbot_db_rows *q, int i)
{
	return sqlite3_column_type(q->stmt, i) == SQLITE_NULL;
}

char *
tlbot_db_col_dup(const struct tlbot_db_rows *q, int i)
{
	const char *t = tlbot_db_col_text(q, i);
	char *d;

	if (t == NULL)
		return NULL;
	d = strdup(t);
	if (d == NULL)
		tlbot_db_error(q->ctx, "out of memory reading a row");
	return d;
}
