/* !exp export: the room's experiment log as Markdown, CSV or JSON. An
 * export under EXPORT_INLINE_MAX characters is posted as a message (md as
 * an HTML table in formatted_body, csv and json as a code block); a larger
 * one is uploaded to the media repository and posted as an m.file.
 *
 * CSV: RFC 4180 (CRLF rows, quoted cells, doubled quotes), UTF-8 with a
 * byte order mark so spreadsheets read it as UTF-8; text cells starting
 * with = + - @ get a leading ' (spreadsheets show them as text, never run
 * them as formulas). Learnings and notes are one cell each, one per line.
 * A CSV is always an uploaded file (a spreadsheet opens it; CSV text in a
 * message helps nobody).
 * JSON: {"experiments": [...], "count": N, "room_id", "exported_at"}; the
 * same fields as the CSV columns with numbers as numbers, learnings as an
 * array of strings, and notes as [{text, by, at}].
 * The columns are the record's fields marked REC_EXPORTED (experiment.h),
 * its id and challenge first, then learnings and notes. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "tlbot/command.h"
#include "tlbot/export.h"
#include "tlbot/tz.h"

#include "experiment.h"

#define EXPORT_INLINE_MAX 3000
#define EXPORT_MAX (20u * 1024 * 1024)

enum format { FMT_MD, FMT_CSV, FMT_JSON };

#define MAX_COLS 64

/* The exported fields in column order: the id and references first, then
 * the rest in table order. Returns how many. */
static size_t
export_fields(const struct rec_field **out)
{
	const struct rec_field *f;
	size_t n = 0;
	int pass;

	for (pass = 0; pass < 2; pass++)
		for (f = tlbot_exp_desc.fields; f->column && n < MAX_COLS; f++) {
			int first = f->type == R_ID || f->type == R_REF;

			if ((f->flags & REC_EXPORTED) && first == (pass == 0))
				out[n++] = f;
		}
	return n;
}

/* The column name of an exported field: the reference's flag
 * ("challenge"), else the column. */
static const char *
export_key(const struct rec_field *f)
{
	return f->type == R_REF ? f->flag : f->column;
}

static const char *const md_columns[] = {
	"E", "Challenge", "Title", "Owner", "Status", "Hypothesis", "Metric", "Start", "End",
	"Result", "Finding", "Decision", "Reason", "Learnings", NULL
};

static void
iso_time(int64_t t, char out[32])
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t <= 0 || gmtime_r(&tt, &tm) == NULL || strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		out[0] = '\0';
}

struct export {
	enum format fmt;
	struct tlbot_buf out;   /* the file's text */
	struct tlbot_buf html;  /* md: the HTML table for an inline message */
	struct tlbot_buf plain; /* md: its plain body (no escapes) */
	struct tlbot_csv csv;
	int html_full;
	size_t n;
	int full;               /* out hit EXPORT_MAX */
	struct tlbot_ctx *ctx;
	const struct rec_field *cols[MAX_COLS];
	size_t ncols;
};

static void
html_add(struct export *x, const char *s, int escape)
{
	if (x->html_full)
		return;
	if ((escape ? tlbot_buf_add_html(&x->html, s, 1) : tlbot_buf_adds(&x->html, s)) != 0)
		x->html_full = 1;
}

/* One Markdown cell (and its HTML twin, and its plain twin: the message
 * body shows the text as written, without Markdown's backslashes). */
static void
md_cell(struct export *x, const char *s)
{
	if (tlbot_buf_adds(&x->out, " ") != 0 || tlbot_md_cell(&x->out, s ? s : "") != 0 ||
	    tlbot_buf_adds(&x->out, " |") != 0)
		x->full = 1;
	if (tlbot_buf_adds(&x->plain, " ") != 0 || tlbot_buf_adds(&x->plain, s ? s : "") != 0 ||
	    tlbot_buf_adds(&x->plain, " |") != 0)
		x->html_full = 1;
	html_add(x, "<td>", 0);
	if (s)
		html_add(x, s, 1);
	html_add(x, "</td>", 0);
}

static void
num_text(int has, double v, char *out, size_t outlen)
{
	out[0] = '\0';
	if (has && tlbot_fmt_double(v, out, outlen) != 0)
		out[0] = '\0';
}

/* The learnings (notes = 0) or notes (1) of E-id joined by newlines (new
 * string in *joined, NULL when none) and as a JSON array (new reference in
 * *arr, when arr is not NULL: strings, or {text, by, at} for notes). 0 or
 * -1 (store error: ctx marked; or out of memory). */
static int
text_rows(struct export *x, int notes, int64_t id, char **joined, json_t **arr)
{
	struct tlbot_db_rows q;
	struct tlbot_buf b;
	int rc;

	*joined = NULL;
	if (arr && (*arr = json_array()) == NULL)
		return -1;
	rc = notes ? tlbot_db_query(x->ctx, &q, "SELECT text, by, at FROM experiment_notes WHERE"
				    " experiment_id = ? ORDER BY id", "i", id)
		   : tlbot_db_query(x->ctx, &q, "SELECT text, by, at FROM experiment_learnings WHERE"
				    " experiment_id = ? ORDER BY id", "i", id);
	if (rc != 0)
		goto fail;
	tlbot_buf_init(&b, EXPORT_MAX);
	while ((rc = tlbot_db_next(&q)) > 0) {
		const char *t = tlbot_db_col_text(&q, 0), *by = tlbot_db_col_text(&q, 1);
		char at[32];
		json_t *v;

		if (t == NULL)
			continue;
		if ((b.len && tlbot_buf_addc(&b, '\n') != 0) || tlbot_buf_adds(&b, t) != 0)
			x->full = 1;
		if (arr == NULL)
			continue;
		iso_time(tlbot_db_col_int(&q, 2), at);
		v = notes ? json_pack("{s:s, s:s?, s:s?}", "text", t, "by", by, "at", at[0] ? at : NULL)
			  : json_string(t);
		if (json_array_append_new(*arr, v) != 0) {
			rc = -1;
			break;
		}
	}
	tlbot_db_done(&q);
	if (rc < 0) {
		tlbot_buf_release(&b);
		goto fail;
	}
	*joined = b.len ? tlbot_buf_detach(&b) : NULL;
	tlbot_buf_release(&b);
	return 0;
fail:
	if (arr) {
		json_decref(*arr);
		*arr = NULL;
	}
	return -1;
}

static json_t *
num_json(int has, double v)
{
	return has ? json_real(v) : json_null();
}

/* One cell of field f of r: text guarded against formulas, numbers as
 * numbers, the bot's own values (ids, users, dates, times) as they are. */
static int
csv_field(struct tlbot_csv *c, const struct rec_field *f, const struct exp_rec *r)
{
	char v[64];

	switch (f->type) {
	case R_TEXT:
		return tlbot_csv_text(c, *rec_text(f, (void *)(uintptr_t)r));
	case R_REAL:
		if (!rec_num(f, (void *)(uintptr_t)r)->has)
			return tlbot_csv_text(c, NULL);
		return tlbot_csv_number(c, rec_num(f, (void *)(uintptr_t)r)->v);
	case R_TIME:
		iso_time(*rec_int(f, (void *)(uintptr_t)r), v);
		return tlbot_csv_plain(c, v);
	case R_ID:
		snprintf(v, sizeof(v), "%s-%lld", tlbot_exp_desc.kind, (long long)r->id);
		return tlbot_csv_plain(c, v);
	case R_USER:
	case R_DATE:
		return tlbot_csv_plain(c, *rec_text(f, (void *)(uintptr_t)r));
	default:
		rec_value(&tlbot_exp_desc, f, r, v, sizeof(v));
		return tlbot_csv_plain(c, v);
	}
}

/* The JSON value of field f of r (new reference). */
static json_t *
json_field(const struct rec_field *f, const struct exp_rec *r)
{
	void *rec = (void *)(uintptr_t)r;
	char v[64];

	switch (f->type) {
	case R_TEXT:
	case R_USER:
	case R_DATE: {
		const char *t = *rec_text(f, rec);

		return t ? json_string(t) : json_null();
	}
	case R_REAL:
		return num_json(rec_num(f, rec)->has, rec_num(f, rec)->v);
	case R_TIME:
		iso_time(*rec_int(f, rec), v);
		return v[0] ? json_string(v) : json_null();
	case R_ID:
		snprintf(v, sizeof(v), "%s-%lld", tlbot_exp_desc.kind, (long long)r->id);
		return json_string(v);
	default:
		rec_value(&tlbot_exp_desc, f, r, v, sizeof(v));
		return json_string(v);
	}
}

/* One experiment as a CSV row: its columns, learnings and notes. */
static void
write_csv(struct export *x, const struct exp_rec *r, const char *learned, const char *noted)
{
	struct tlbot_csv *c = &x->csv;
	size_t i;
	int bad = 0;

	for (i = 0; i < x->ncols; i++)
		bad |= csv_field(c, x->cols[i], r);
	if (bad || tlbot_csv_text(c, learned) || tlbot_csv_text(c, noted) || tlbot_csv_end_row(c))
		x->full = 1;
}

/* One experiment as a JSON object (larr, narr: its learnings and notes,
 * handed over). 0, or -1 when out of memory. */
static int
write_json(struct export *x, const struct exp_rec *r, json_t *larr, json_t *narr)
{
	json_t *o = json_object();
	char *text;
	size_t i;

	if (o == NULL) {
		json_decref(larr);
		json_decref(narr);
		return -1;
	}
	for (i = 0; i < x->ncols; i++) {
		json_object_set_new(o, export_key(x->cols[i]), json_field(x->cols[i], r));
		if (x->cols[i]->type == R_ID)
			json_object_set_new(o, "number", json_integer(r->id));
	}
	json_object_set_new(o, "learnings", larr);
	json_object_set_new(o, "notes", narr);
	text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
	json_decref(o);
	if (text == NULL)
		return -1;
	if (tlbot_buf_adds(&x->out, x->n ? ",\n" : "\n") != 0 || tlbot_buf_adds(&x->out, text) != 0)
		x->full = 1;
	free(text);
	return 0;
}

/* One experiment as a Markdown table row (and an HTML one). */
static void
write_md(struct export *x, const struct exp_rec *r, const char *learned)
{
	char eid[32], cid[32], b[40], t[40], v[40];
	struct tlbot_buf h, m;

	snprintf(eid, sizeof(eid), "E-%lld", (long long)r->id);
	snprintf(cid, sizeof(cid), "C-%lld", (long long)r->challenge_id);
	tlbot_buf_init(&h, 4 * 2000 + 64);
	tlbot_buf_printf(&h, "We believe %s will result in %s. We will know when %s.",
			 r->believe ? r->believe : "?", r->result_in ? r->result_in : "?",
			 r->know_when ? r->know_when : "?");
	num_text(r->baseline.has, r->baseline.v, b, sizeof(b));
	num_text(r->target.has, r->target.v, t, sizeof(t));
	num_text(r->result_value.has, r->result_value.v, v, sizeof(v));
	tlbot_buf_init(&m, 400);
	if (r->metric)
		tlbot_buf_printf(&m, "%s%s%s%s%s%s%s", r->metric, b[0] ? ": " : "", b,
				 t[0] ? " → " : "", t, r->unit ? " " : "", r->unit ? r->unit : "");
	if (tlbot_buf_adds(&x->out, "|") != 0)
		x->full = 1;
	tlbot_buf_adds(&x->plain, "|");
	html_add(x, "<tr>", 0);
	md_cell(x, eid);
	md_cell(x, cid);
	md_cell(x, r->title);
	md_cell(x, r->owner);
	md_cell(x, r->status);
	md_cell(x, tlbot_buf_str(&h));
	md_cell(x, tlbot_buf_str(&m));
	md_cell(x, r->start_date);
	md_cell(x, r->end_date);
	tlbot_buf_reset(&m);
	if (v[0])
		tlbot_buf_printf(&m, "%s%s%s", v, r->unit ? " " : "", r->unit ? r->unit : "");
	md_cell(x, tlbot_buf_str(&m));
	md_cell(x, r->finding);
	md_cell(x, r->decision);
	md_cell(x, r->decision_reason ? r->decision_reason : r->abandon_reason);
	md_cell(x, learned);
	html_add(x, "</tr>", 0);
	if (tlbot_buf_adds(&x->out, "\n") != 0)
		x->full = 1;
	tlbot_buf_adds(&x->plain, "\n");
	tlbot_buf_release(&h);
	tlbot_buf_release(&m);
}

/* Write one experiment. 0 or -1 (database / memory; x->full on size). */
static int
write_one(struct export *x, const struct exp_rec *r)
{
	char *learned = NULL, *noted = NULL;
	json_t *larr = NULL, *narr = NULL;
	int rc = 0;

	if (text_rows(x, 0, r->id, &learned, x->fmt == FMT_JSON ? &larr : NULL) != 0 ||
	    (x->fmt != FMT_MD && text_rows(x, 1, r->id, &noted, x->fmt == FMT_JSON ? &narr : NULL) != 0)) {
		free(learned);
		json_decref(larr);
		return -1;
	}
	switch (x->fmt) {
	case FMT_CSV:
		write_csv(x, r, learned, noted);
		break;
	case FMT_JSON:
		rc = write_json(x, r, larr, narr);
		larr = narr = NULL;
		break;
	case FMT_MD:
		write_md(x, r, learned);
		break;
	}
	json_decref(larr);
	json_decref(narr);
	free(learned);
	free(noted);
	x->n++;
	return rc;
}

static void
write_head(struct export *x)
{
	size_t i;

	switch (x->fmt) {
	case FMT_CSV:
		tlbot_buf_adds(&x->out, TLBOT_CSV_BOM);
		tlbot_csv_init(&x->csv, &x->out, TLBOT_CSV_FORMULA_GUARD);
		for (i = 0; i < x->ncols; i++)
			tlbot_csv_text(&x->csv, export_key(x->cols[i]));
		tlbot_csv_text(&x->csv, "learnings");
		tlbot_csv_text(&x->csv, "notes");
		tlbot_csv_end_row(&x->csv);
		break;
	case FMT_JSON:
		tlbot_buf_adds(&x->out, "{\"experiments\": [");
		break;
	case FMT_MD:
		html_add(x, "<table><thead><tr>", 0);
		tlbot_buf_adds(&x->out, "|");
		tlbot_buf_adds(&x->plain, "|");
		for (i = 0; md_columns[i]; i++) {
			tlbot_buf_printf(&x->out, " %s |", md_columns[i]);
			tlbot_buf_printf(&x->plain, " %s |", md_columns[i]);
			html_add(x, "<th>", 0);
			html_add(x, md_columns[i], 1);
			html_add(x, "</th>", 0);
		}
		tlbot_buf_adds(&x->out, "\n|");
		for (i = 0; md_columns[i]; i++)
			tlbot_buf_adds(&x->out, "---|");
		tlbot_buf_adds(&x->out, "\n");
		tlbot_buf_adds(&x->plain, "\n");
		html_add(x, "</tr></thead><tbody>", 0);
		break;
	}
}

static int
write_tail(struct export *x, const char *room, time_t now)
{
	char at[32];
	json_t *r;
	char *rt;

	switch (x->fmt) {
	case FMT_JSON:
		iso_time(now, at);
		r = json_string(room);
		rt = r ? json_dumps(r, JSON_ENCODE_ANY) : NULL;
		json_decref(r);
		if (rt == NULL)
			return -1;
		if (tlbot_buf_printf(&x->out, "%s],\n\"count\": %zu, \"room_id\": %s,"
				     " \"exported_at\": \"%s\"}\n", x->n ? "\n" : "", x->n, rt, at) != 0)
			x->full = 1;
		free(rt);
		break;
	case FMT_MD:
		html_add(x, "</tbody></table>", 0);
		break;
	case FMT_CSV:
		break;
	}
	return 0;
}

/* The file formats' extensions, MIME types and names, by enum fmt. */
static const char *const exts[] = { "md", "csv", "json" };
static const char *const mimes[] = { "text/markdown; charset=utf-8", "text/csv; charset=utf-8",
				     "application/json" };
static const char *const names[] = { "Markdown", "CSV", "JSON" };

/* Write the room's experiments into x (of challenge cid when cid >= 0;
 * of status st, or open ones): the head and one entry each. The last
 * tlbot_db_next's return (0 at the end, 1 when x filled up), or -1. */
static int
export_rows(struct export *x, const char *room, int64_t cid, const char *st, int open_only)
{
	struct tlbot_db_rows q = { NULL, NULL };
	struct tlbot_buf sql;
	char where[256];
	int rc;

	snprintf(where, sizeof(where), " e.room_id = ?1%s%s ORDER BY e.id",
		 cid >= 0 ? " AND e.challenge_id = ?2" : " AND ?2 = 0",
		 open_only ? " AND e.status IN ('proposed', 'running') AND ?3 IS NULL"
			   : st ? " AND e.status = ?3" : " AND ?3 IS NULL");
	tlbot_buf_init(&sql, 8192);
	rec_select(&tlbot_exp_desc, "e", &sql);
	tlbot_buf_adds(&sql, "WHERE");
	tlbot_buf_adds(&sql, where);
	if (tlbot_db_query(x->ctx, &q, tlbot_buf_str(&sql), "tit", room, cid >= 0 ? cid : 0, st) != 0) {
		tlbot_buf_release(&sql);
		return -1;
	}
	write_head(x);
	while ((rc = tlbot_db_next(&q)) > 0) {
		struct exp_rec r;

		if (rec_read(&tlbot_exp_desc, &q, &r) != 0) {
			rc = -1;
			break;
		}
		if (write_one(x, &r) != 0)
			rc = -1;
		rec_release(&tlbot_exp_desc, &r);
		if (rc < 0 || x->full)
			break;
	}
	tlbot_db_done(&q);
	tlbot_buf_release(&sql);
	return rc;
}

/* A small export as a message: Markdown as it reads, JSON in a code block. */
static int
export_inline(struct tlbot_ctx *ctx, const struct export *x)
{
	struct tlbot_msg m;

	tlbot_msg_init(&m);
	tlbot_msg_bold(&m, "Experiment log");
	tlbot_msg_textf(&m, " — %zu experiment%s (%s)", x->n, x->n == 1 ? "" : "s", names[x->fmt]);
	tlbot_msg_br(&m);
	if (x->fmt == FMT_MD) {
		tlbot_msg_plain(&m, tlbot_buf_str(&x->plain));
		tlbot_msg_html(&m, tlbot_buf_str(&x->html));
	} else {
		struct tlbot_buf esc;
		const char *text = tlbot_buf_str(&x->out);

		tlbot_buf_init(&esc, TLBOT_MSG_MAX);
		tlbot_buf_add_html(&esc, text, 0);
		tlbot_msg_plain(&m, text);
		tlbot_msg_html(&m, "<pre><code>");
		tlbot_msg_html(&m, tlbot_buf_str(&esc));
		tlbot_msg_html(&m, "</code></pre>");
		tlbot_buf_release(&esc);
	}
	return tlbot_reply(ctx, &m);
}

/* A larger (or CSV) export as a file, named by day (and challenge cid
 * when cid >= 0), announced first. */
static int
export_file(struct tlbot_ctx *ctx, const struct export *x, const char *room, int64_t cid)
{
	char fname[96], day[11], caption[256];
	size_t k;
	int rc;

	if (tlbot_tz_date(tlbot_ctx_default_tz(ctx) ? tlbot_ctx_default_tz(ctx) : "UTC",
			  tlbot_ctx_now(ctx), day) != 0)
		snprintf(day, sizeof(day), "export");
	if (cid >= 0)
		snprintf(fname, sizeof(fname), "experiments-C-%lld-%s.%s", (long long)cid, day, exts[x->fmt]);
	else
		snprintf(fname, sizeof(fname), "experiments-%s.%s", day, exts[x->fmt]);
	snprintf(caption, sizeof(caption), "%s (%zu experiment%s, %s%s)", fname, x->n,
		 x->n == 1 ? "" : "s", names[x->fmt], x->fmt == FMT_CSV ? ", UTF-8" : "");
	k = x->out.len;
	rc = tlbot_replyf(ctx, "Exported %zu experiment%s as %s (%zu KB): the file follows.", x->n,
			  x->n == 1 ? "" : "s", fname, (k + 1023) / 1024);
	if (rc == 0)
		rc = tlbot_send_file(ctx, room, fname, mimes[x->fmt], x->out.data, k, caption);
	if (rc != 0)
		rc = tlbot_exp_fail(ctx, "could not queue the export file");
	return rc;
}

int
tlbot_exp_export(struct tlbot_ctx *ctx, const struct tlbot_args *a)
{
	static const char *const statuses[] = { "proposed", "running", "concluded", "abandoned", NULL };
	const char *fmtname = tlbot_args_get(a, "format"), *st = tlbot_args_get(a, "status");
	const char *ch = tlbot_args_get(a, "challenge"), *room = tlbot_ctx_room(ctx);
	struct export x;
	int64_t cid = 0;
	int rc, open_only = 0, i;

	memset(&x, 0, sizeof(x));
	x.ctx = ctx;
	x.ncols = export_fields(x.cols);
	/* --format is md, csv or json (dispatch checked and lower-cased it) */
	if (fmtname && strcmp(fmtname, "csv") == 0)
		x.fmt = FMT_CSV;
	else if (fmtname && strcmp(fmtname, "json") == 0)
		x.fmt = FMT_JSON;
	else
		x.fmt = FMT_MD;
	if (ch)
		cid = tlbot_args_flag_val(a, "challenge")->n; /* C-12 from dispatch */
	if (st && strcasecmp(st, "open") == 0)
		open_only = 1;
	else if (st) {
		for (i = 0; statuses[i] && strcasecmp(statuses[i], st) != 0; i++)
			;
		if (statuses[i] == NULL)
			return tlbot_exp_fail(ctx, "unknown status '%s': use proposed, running, concluded,"
					  " abandoned or open", st);
		st = statuses[i];
	}
	tlbot_buf_init(&x.out, EXPORT_MAX);
	tlbot_buf_init(&x.html, TLBOT_MSG_MAX / 2);
	tlbot_buf_init(&x.plain, TLBOT_MSG_MAX / 2);
	rc = export_rows(&x, room, ch ? cid : -1, open_only ? NULL : st, open_only);
	if (x.full) {
		rc = tlbot_exp_fail(ctx, "the export is too large (over %u MB): narrow it with --challenge"
				" C-12 or --status S", EXPORT_MAX / (1024 * 1024));
		goto out;
	}
	if (rc < 0 || write_tail(&x, room, tlbot_ctx_now(ctx)) != 0) {
		rc = -1;
		if (!x.full)
			tlbot_db_error(ctx, "export");
		goto out;
	}
	if (x.full) {
		rc = tlbot_exp_fail(ctx, "the export is too large: narrow it with --challenge or --status");
		goto out;
	}
	if (x.n == 0) {
		rc = tlbot_replyf(ctx, "Nothing to export: no experiments in this room%s.",
				  ch || st ? " match that" : "");
		goto out;
	}
	if (x.fmt != FMT_CSV && x.out.len < EXPORT_INLINE_MAX && !x.html_full) {
		rc = export_inline(ctx, &x);
		goto out;
	}
	rc = export_file(ctx, &x, room, ch ? cid : -1);
out:
	tlbot_buf_release(&x.out);
	tlbot_buf_release(&x.html);
	tlbot_buf_release(&x.plain);
	return rc;
}
