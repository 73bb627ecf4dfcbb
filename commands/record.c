/* Records described once: the field-by-field work of every family's
 * record, driven by its field table (see record.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tlbot/export.h"

#include "record.h"

const struct rec_field *
rec_field_by_flag(const struct rec_desc *d, const char *flag)
{
	const struct rec_field *f;

	for (f = d->fields; f->column; f++)
		if (strcmp(f->flag, flag) == 0)
			return f;
	return NULL;
}

const struct rec_field *
rec_field_by_column(const struct rec_desc *d, const char *column)
{
	const struct rec_field *f;

	for (f = d->fields; f->column; f++)
		if (strcmp(f->column, column) == 0)
			return f;
	return NULL;
}

char **
rec_text(const struct rec_field *f, void *rec)
{
	return (char **)((char *)rec + f->off);
}

int64_t *
rec_int(const struct rec_field *f, void *rec)
{
	return (int64_t *)((char *)rec + f->off);
}

struct rec_num *
rec_num(const struct rec_field *f, void *rec)
{
	return (struct rec_num *)((char *)rec + f->off);
}

static int
is_text(enum rec_type t)
{
	return t == R_TEXT || t == R_DATE || t == R_USER;
}

int
rec_select(const struct rec_desc *d, const char *alias, struct tlbot_buf *b)
{
	const struct rec_field *f;

	tlbot_buf_adds(b, "SELECT ");
	for (f = d->fields; f->column; f++)
		tlbot_buf_printf(b, "%s%s.%s", f == d->fields ? "" : ", ", alias, f->column);
	return tlbot_buf_printf(b, " FROM %s %s ", d->table, alias);
}

int
rec_read(const struct rec_desc *d, const struct tlbot_db_rows *q, void *rec)
{
	const struct rec_field *f;
	int i, oom = 0;

	for (f = d->fields, i = 0; f->column; f++, i++) {
		if (is_text(f->type)) {
			char **p = rec_text(f, rec);

			*p = tlbot_db_col_dup(q, i);
			if (*p == NULL && !tlbot_db_col_null(q, i))
				oom = 1;
		} else if (f->type == R_REAL) {
			struct rec_num *n = rec_num(f, rec);

			n->has = !tlbot_db_col_null(q, i);
			n->v = n->has ? tlbot_db_col_double(q, i) : 0;
		} else {
			*rec_int(f, rec) = tlbot_db_col_int(q, i);
		}
	}
	if (oom) {
		rec_release(d, rec);
		return -1;
	}
	return 0;
}

void
rec_release(const struct rec_desc *d, void *rec)
{
	const struct rec_field *f;

	for (f = d->fields; f->column; f++)
		if (is_text(f->type)) {
			free(*rec_text(f, rec));
			*rec_text(f, rec) = NULL;
		}
}

int
rec_is_key(const struct rec_field *f)
{
	return f->type == R_ID || (f->flags & REC_KEY);
}

/* The R_ID field (the record's number, its history id), or NULL. */
static const struct rec_field *
id_field(const struct rec_desc *d)
{
	const struct rec_field *f;

	for (f = d->fields; f->column; f++)
		if (f->type == R_ID)
			return f;
	return NULL;
}

/* Bind field f of rec as parameter i of q. 0 or -1 (ctx marked). */
static int
bind_field(struct tlbot_db_rows *q, int i, const struct rec_field *f, const void *rec)
{
	void *r = (void *)(uintptr_t)rec;

	if (is_text(f->type))
		return tlbot_db_bind(q, i, 't', *rec_text(f, r));
	if (f->type == R_REAL)
		return tlbot_db_bind(q, i, 'n', rec_num(f, r)->has, rec_num(f, r)->v);
	return tlbot_db_bind(q, i, 'i', *rec_int(f, r));
}

/* " WHERE <alias.>k1 = ?<first> AND <alias.>k2 = ?<first+1> ..." over the
 * key columns into b. 0 or -1 (too long). */
static int
where_key(const struct rec_desc *d, const char *alias, int first, struct tlbot_buf *b)
{
	const struct rec_field *f;
	int rc = 0, n = 0;

	for (f = d->fields; f->column; f++) {
		if (!rec_is_key(f))
			continue;
		rc = tlbot_buf_printf(b, "%s%s%s%s = ?%d", n ? " AND " : " WHERE ", alias ? alias : "",
				      alias ? "." : "", f->column, first + n);
		n++;
	}
	return n ? rc : -1;
}

/* Bind the key members of key from parameter first on. 0 or -1. */
static int
bind_key(const struct rec_desc *d, struct tlbot_db_rows *q, int first, const void *key)
{
	const struct rec_field *f;
	int n = 0;

	for (f = d->fields; f->column; f++)
		if (rec_is_key(f) && bind_field(q, first + n++, f, key) != 0)
			return -1;
	return 0;
}

/* Run the SELECT of d for the one row where its key is key's (or, key
 * NULL, where its single R_ID key is id) and read it into rec. */
static int
load(struct tlbot_ctx *ctx, const struct rec_desc *d, const void *key, int64_t id, void *rec)
{
	struct tlbot_buf sql;
	struct tlbot_db_rows q;
	int rc = -1;

	tlbot_buf_init(&sql, 4096);
	if (rec_select(d, "x", &sql) != 0 || where_key(d, "x", 1, &sql) != 0) {
		tlbot_buf_release(&sql);
		return tlbot_db_error(ctx, "record query too long");
	}
	if (tlbot_db_query(ctx, &q, tlbot_buf_str(&sql), "") == 0) {
		if (key ? bind_key(d, &q, 1, key) == 0 : tlbot_db_bind(&q, 1, 'i', id) == 0) {
			rc = tlbot_db_next(&q);
			if (rc > 0)
				rc = rec_read(d, &q, rec) == 0 ? 0 : -1;
			else if (rc == 0)
				rc = 1;
		}
		tlbot_db_done(&q);
	}
	tlbot_buf_release(&sql);
	return rc;
}

int
rec_load(struct tlbot_ctx *ctx, const struct rec_desc *d, int64_t id, void *rec)
{
	return load(ctx, d, NULL, id, rec);
}

int
rec_load_key(struct tlbot_ctx *ctx, const struct rec_desc *d, const void *key, void *rec)
{
	return load(ctx, d, key, 0, rec);
}

int
rec_query(struct tlbot_ctx *ctx, const struct rec_desc *d, struct tlbot_db_rows *q,
	  const char *where, const char *types, ...)
{
	struct tlbot_buf sql;
	va_list ap;
	int rc;

	q->ctx = ctx;
	q->stmt = NULL;
	tlbot_buf_init(&sql, 4096);
	if (rec_select(d, "x", &sql) != 0 || tlbot_buf_adds(&sql, where) != 0) {
		tlbot_buf_release(&sql);
		return tlbot_db_error(ctx, "record query too long");
	}
	va_start(ap, types);
	rc = tlbot_db_vquery(ctx, q, tlbot_buf_str(&sql), types, ap);
	va_end(ap);
	tlbot_buf_release(&sql);
	return rc;
}

int
rec_insert(struct tlbot_ctx *ctx, const struct rec_desc *d, const void *rec)
{
	const struct rec_field *f;
	struct tlbot_buf sql;
	struct tlbot_db_rows q;
	int rc = -1, i;

	tlbot_buf_init(&sql, 4096);
	tlbot_buf_printf(&sql, "INSERT INTO %s(", d->table);
	for (f = d->fields; f->column; f++)
		tlbot_buf_printf(&sql, "%s%s", f == d->fields ? "" : ", ", f->column);
	tlbot_buf_adds(&sql, ") VALUES (");
	for (f = d->fields; f->column; f++)
		tlbot_buf_adds(&sql, f == d->fields ? "?" : ", ?");
	if (tlbot_buf_adds(&sql, ")") != 0) {
		tlbot_buf_release(&sql);
		return tlbot_db_error(ctx, "record insert too long");
	}
	/* the values come from the record, so they are bound one by one
	 * rather than through a types string */
	if (tlbot_db_query(ctx, &q, tlbot_buf_str(&sql), "") == 0) {
		for (f = d->fields, i = 1; f->column; f++, i++)
			if (bind_field(&q, i, f, rec) != 0)
				break;
		if (f->column == NULL && tlbot_db_next(&q) == 0)
			rc = 0;
		tlbot_db_done(&q);
	}
	tlbot_buf_release(&sql);
	return rc;
}

int
rec_delete(struct tlbot_ctx *ctx, const struct rec_desc *d, const void *key)
{
	struct tlbot_buf sql;
	struct tlbot_db_rows q;
	int rc = -1;

	tlbot_buf_init(&sql, 512);
	if (tlbot_buf_printf(&sql, "DELETE FROM %s", d->table) != 0 ||
	    where_key(d, NULL, 1, &sql) != 0) {
		tlbot_buf_release(&sql);
		return tlbot_db_error(ctx, "record delete too long");
	}
	if (tlbot_db_query(ctx, &q, tlbot_buf_str(&sql), "") == 0) {
		if (bind_key(d, &q, 1, key) == 0 && tlbot_db_next(&q) == 0)
			rc = (int)tlbot_db_changes(ctx);
		tlbot_db_done(&q);
	}
	tlbot_buf_release(&sql);
	return rc;
}

void
rec_value(const struct rec_desc *d, const struct rec_field *f, const void *rec, char *out,
	  size_t outlen)
{
	void *r = (void *)(uintptr_t)rec;

	out[0] = '\0';
	if (is_text(f->type)) {
		const char *v = *rec_text(f, r);

		if (v)
			snprintf(out, outlen, "%s", v);
	} else if (f->type == R_REAL) {
		const struct rec_num *n = rec_num(f, r);

		if (n->has && tlbot_fmt_double(n->v, out, outlen) != 0)
			snprintf(out, outlen, "?");
	} else if (f->type == R_REF) {
		snprintf(out, outlen, "%s-%lld", d->ref_kind ? d->ref_kind : "#",
			 (long long)*rec_int(f, r));
	} else {
		snprintf(out, outlen, "%lld", (long long)*rec_int(f, r));
	}
}

/* UPDATE <table> SET <column> = ?1[, <touch> = ?2] WHERE <key> = ?3 ...,
 * the values from rec. */
static int
update(struct tlbot_ctx *ctx, const struct rec_desc *d, const void *rec,
       const struct rec_field *f)
{
	struct tlbot_buf sql;
	struct tlbot_db_rows q;
	int rc = -1;

	tlbot_buf_init(&sql, 512);
	tlbot_buf_printf(&sql, "UPDATE %s SET %s = ?1", d->table, f->column);
	if (d->touch)
		tlbot_buf_printf(&sql, ", %s = ?2", d->touch);
	if (where_key(d, NULL, 3, &sql) != 0) {
		tlbot_buf_release(&sql);
		return tlbot_db_error(ctx, "record update too long");
	}
	if (tlbot_db_query(ctx, &q, tlbot_buf_str(&sql), "") != 0) {
		tlbot_buf_release(&sql);
		return -1;
	}
	if (bind_field(&q, 1, f, rec) == 0 &&
	    (d->touch == NULL || tlbot_db_bind(&q, 2, 'i', (int64_t)tlbot_ctx_now(ctx)) == 0) &&
	    bind_key(d, &q, 3, rec) == 0 && tlbot_db_next(&q) == 0)
		rc = 0;
	tlbot_db_done(&q);
	tlbot_buf_release(&sql);
	return rc;
}

/* After the member changed from old text: write it and, for a record with
 * a kind and a number, the history row. */
static int
changed(struct tlbot_ctx *ctx, const struct rec_desc *d, void *rec, const struct rec_field *f,
	const char *old, const char *action)
{
	const struct rec_field *idf = id_field(d);
	char now[256];

	if (update(ctx, d, rec, f) != 0)
		return -1;
	if (d->kind == NULL || idf == NULL)
		return 0;
	rec_value(d, f, rec, now, sizeof(now));
	if (is_text(f->type))
		return tlbot_history_add(ctx, d->kind, *rec_int(idf, rec), action, f->column, old,
					 *rec_text(f, rec));
	return tlbot_history_add(ctx, d->kind, *rec_int(idf, rec), action, f->column, old,
				 now[0] ? now : NULL);
}

int
rec_set_text(struct tlbot_ctx *ctx, const struct rec_desc *d, void *rec,
	     const struct rec_field *f, const char *v, const char *action)
{
	char **p = rec_text(f, rec), *old = *p, *copy = NULL;
	int rc;

	if (rec_is_key(f))
		return tlbot_db_error(ctx, "a record's key is not changed in place");
	if ((old == NULL && v == NULL) || (old && v && strcmp(old, v) == 0))
		return 0;
	if (v && (copy = strdup(v)) == NULL)
		return tlbot_db_error(ctx, "out of memory");
	*p = copy;
	rc = changed(ctx, d, rec, f, old, action);
	free(old);
	return rc;
}

int
rec_set_num(struct tlbot_ctx *ctx, const struct rec_desc *d, void *rec,
	    const struct rec_field *f, struct rec_num v, const char *action)
{
	struct rec_num *p = rec_num(f, rec);
	char old[64];

	if (rec_is_key(f))
		return tlbot_db_error(ctx, "a record's key is not changed in place");
	if (p->has == v.has && (!v.has || p->v == v.v))
		return 0;
	rec_value(d, f, rec, old, sizeof(old));
	*p = v;
	return changed(ctx, d, rec, f, old[0] ? old : NULL, action);
}

int
rec_set_int(struct tlbot_ctx *ctx, const struct rec_desc *d, void *rec,
	    const struct rec_field *f, int64_t v, const char *action)
{
	int64_t *p = rec_int(f, rec);
	char old[64];

	if (rec_is_key(f))
		return tlbot_db_error(ctx, "a record's key is not changed in place");
	if (*p == v)
		return 0;
	rec_value(d, f, rec, old, sizeof(old));
	*p = v;
	return changed(ctx, d, rec, f, old, action);
}

void
rec_day(const char *date, const char *today, char *out, size_t outlen)
{
	static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	int y, m, dd;

	if (date == NULL || strlen(date) != 10 || date[4] != '-' || date[7] != '-') {
		snprintf(out, outlen, "%s", date ? date : "");
		return;
	}
	y = atoi(date);
	m = atoi(date + 5);
	dd = atoi(date + 8);
	if (m < 1 || m > 12) {
		snprintf(out, outlen, "%s", date);
		return;
	}
	if (today && strncmp(today, date, 4) == 0)
		snprintf(out, outlen, "%d %s", dd, months[m - 1]);
	else
		snprintf(out, outlen, "%d %s %d", dd, months[m - 1], y);
}
