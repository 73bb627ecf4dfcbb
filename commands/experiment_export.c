/* !exp export: the room's experiment log as Markdown, CSV or JSON. An
 * export under EXPORT_INLINE_MAX characters is posted as a message (md as
 * an HTML table in formatted_body, csv and json as a code block); a larger
 * one is uploaded to the media repository and posted as an m.file.
 *
 * CSV: RFC 4180 (CRLF rows, quoted cells, doubled quotes), UTF-8 with a
 * byte order mark so spreadsheets read it as UTF-8; text cells starting
 * with = + - @ get a leading ' (spreadsheets show them as text, never run
 * them as formulas). Learnings are one cell, one learning per line.
 * JSON: {"experiments": [...], "count": N, "room_id", "exported_at"}; the
 * same fields as the CSV columns with numbers as numbers, learnings as an
 * array of strings, and notes as [{text, by, at}]. */
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

static const char *const columns[] = {
	"id", "challenge", "title", "owner", "status", "believe", "result_in", "know_when",
	"method", "metric", "baseline", "target", "unit", "start_date", "end_date",
	"result_value", "finding", "decision", "decision_reason", "abandon_reason", "learnings",
	"created_by", "created_at", "updated_at", NULL
};

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
	struct tlbot_csv csv;
	int html_full;
	size_t n;
	int full;               /* out hit EXPORT_MAX */
	sqlite3_stmt *learn, *notes;
};

static void
html_add(struct export *x, const char *s, int escape)
{
	if (x->html_full)
		return;
	if ((escape ? tlbot_buf_add_html(&x->html, s, 1) : tlbot_buf_adds(&x->html, s)) != 0)
		x->html_full = 1;
}

/* One Markdown cell (and its HTML twin). */
static void
md_cell(struct export *x, const char *s)
{
	if (tlbot_buf_adds(&x->out, " ") != 0 || tlbot_md_cell(&x->out, s ? s : "") != 0 ||
	    tlbot_buf_adds(&x->out, " |") != 0)
		x->full = 1;
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

/* The learnings of E-id joined by newlines (new string in *joined) and as
 * a JSON array (new reference in *arr, when arr is not NULL). 0 or -1. */
static int
learnings(struct export *x, int64_t id, char **joined, json_t **arr)
{
	struct tlbot_buf b;
	int rc;

	tlbot_buf_init(&b, EXPORT_MAX);
	if (arr && (*arr = json_array()) == NULL)
		return -1;
	sqlite3_reset(x->learn);
	sqlite3_bind_int64(x->learn, 1, id);
	while ((rc = sqlite3_step(x->learn)) == SQLITE_ROW) {
		const char *t = (const char *)sqlite3_column_text(x->learn, 0);

		if (t == NULL)
			continue;
		if ((b.len && tlbot_buf_addc(&b, '\n') != 0) || tlbot_buf_adds(&b, t) != 0)
			rc = SQLITE_FULL;
		if (arr && json_array_append_new(*arr, json_string(t)) != 0)
			rc = SQLITE_NOMEM;
		if (rc != SQLITE_ROW)
			break;
	}
	if (rc != SQLITE_DONE) {
		tlbot_buf_release(&b);
		if (arr) {
			json_decref(*arr);
			*arr = NULL;
		}
		return -1;
	}
	*joined = b.len ? tlbot_buf_detach(&b) : NULL;
	tlbot_buf_release(&b);
	return 0;
}

static json_t *
notes_json(struct export *x, int64_t id)
{
	json_t *arr = json_array();
	int rc;

	if (arr == NULL)
		return NULL;
	sqlite3_reset(x->notes);
	sqlite3_bind_int64(x->notes, 1, id);
	while ((rc = sqlite3_step(x->notes)) == SQLITE_ROW) {
		const char *t = (const char *)sqlite3_column_text(x->notes, 0);
		const char *by = (const char *)sqlite3_column_text(x->notes, 1);
		char at[32];

		iso_time(sqlite3_column_int64(x->notes, 2), at);
		if (json_array_append_new(arr, json_pack("{s:s?, s:s?, s:s?}", "text", t, "by", by,
							 "at", at[0] ? at : NULL)) != 0) {
			rc = SQLITE_NOMEM;
			break;
		}
	}
	if (rc != SQLITE_DONE) {
		json_decref(arr);
		return NULL;
	}
	return arr;
}

static json_t *
num_json(int has, double v)
{
	return has ? json_real(v) : json_null();
}

/* Write one experiment. 0 or -1 (database / memory; x->full on size). */
static int
write_one(struct export *x, const struct exp_rec *r)
{
	char eid[32], cid[32], created[32], updated[32], b[40], t[40], v[40];
	char *learned = NULL;
	json_t *larr = NULL;
	int rc = 0;

	snprintf(eid, sizeof(eid), "E-%lld", (long long)r->id);
	snprintf(cid, sizeof(cid), "C-%lld", (long long)r->challenge_id);
	iso_time(r->created_at, created);
	iso_time(r->updated_at, updated);
	if (learnings(x, r->id, &learned, x->fmt == FMT_JSON ? &larr : NULL) != 0)
		return -1;
	switch (x->fmt) {
	case FMT_CSV: {
		struct tlbot_csv *c = &x->csv;

		/* ids, user ids, states and dates are the bot's own: never guarded */
		if (tlbot_csv_plain(c, eid) || tlbot_csv_plain(c, cid) || tlbot_csv_text(c, r->title) ||
		    tlbot_csv_plain(c, r->owner) || tlbot_csv_plain(c, r->status) ||
		    tlbot_csv_text(c, r->believe) || tlbot_csv_text(c, r->result_in) ||
		    tlbot_csv_text(c, r->know_when) || tlbot_csv_text(c, r->method) ||
		    tlbot_csv_text(c, r->metric) ||
		    (r->has_baseline ? tlbot_csv_number(c, r->baseline) : tlbot_csv_text(c, NULL)) ||
		    (r->has_target ? tlbot_csv_number(c, r->target) : tlbot_csv_text(c, NULL)) ||
		    tlbot_csv_text(c, r->unit) || tlbot_csv_plain(c, r->start_date) ||
		    tlbot_csv_plain(c, r->end_date) ||
		    (r->has_result ? tlbot_csv_number(c, r->result_value) : tlbot_csv_text(c, NULL)) ||
		    tlbot_csv_text(c, r->finding) || tlbot_csv_plain(c, r->decision) ||
		    tlbot_csv_text(c, r->decision_reason) || tlbot_csv_text(c, r->abandon_reason) ||
		    tlbot_csv_text(c, learned) || tlbot_csv_plain(c, r->created_by) ||
		    tlbot_csv_plain(c, created) || tlbot_csv_plain(c, updated) || tlbot_csv_end_row(c))
			x->full = 1;
		break;
	}
	case FMT_JSON: {
		json_t *o = json_object(), *notes = notes_json(x, r->id);
		char *text;

		if (o == NULL || notes == NULL) {
			json_decref(o);
			json_decref(notes);
			rc = -1;
			break;
		}
		json_object_set_new(o, "id", json_string(eid));
		json_object_set_new(o, "number", json_integer(r->id));
		json_object_set_new(o, "challenge", json_string(cid));
#define SET_STR(k, v) json_object_set_new(o, k, (v) ? json_string(v) : json_null())
		SET_STR("title", r->title);
		SET_STR("owner", r->owner);
		SET_STR("status", r->status);
		SET_STR("believe", r->believe);
		SET_STR("result_in", r->result_in);
		SET_STR("know_when", r->know_when);
		SET_STR("method", r->method);
		SET_STR("metric", r->metric);
		json_object_set_new(o, "baseline", num_json(r->has_baseline, r->baseline));
		json_object_set_new(o, "target", num_json(r->has_target, r->target));
		SET_STR("unit", r->unit);
		SET_STR("start_date", r->start_date);
		SET_STR("end_date", r->end_date);
		json_object_set_new(o, "result_value", num_json(r->has_result, r->result_value));
		SET_STR("finding", r->finding);
		SET_STR("decision", r->decision);
		SET_STR("decision_reason", r->decision_reason);
		SET_STR("abandon_reason", r->abandon_reason);
		json_object_set_new(o, "learnings", larr);
		larr = NULL;
		json_object_set_new(o, "notes", notes);
		SET_STR("created_by", r->created_by);
		json_object_set_new(o, "created_at", created[0] ? json_string(created) : json_null());
		json_object_set_new(o, "updated_at", updated[0] ? json_string(updated) : json_null());
#undef SET_STR
		text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
		json_decref(o);
		if (text == NULL) {
			rc = -1;
			break;
		}
		if (tlbot_buf_adds(&x->out, x->n ? ",\n" : "\n") != 0 || tlbot_buf_adds(&x->out, text) != 0)
			x->full = 1;
		free(text);
		break;
	}
	case FMT_MD: {
		struct tlbot_buf h, m;

		tlbot_buf_init(&h, 4 * 2000 + 64);
		tlbot_buf_printf(&h, "We believe %s will result in %s. We will know when %s.",
				 r->believe ? r->believe : "?", r->result_in ? r->result_in : "?",
				 r->know_when ? r->know_when : "?");
		num_text(r->has_baseline, r->baseline, b, sizeof(b));
		num_text(r->has_target, r->target, t, sizeof(t));
		num_text(r->has_result, r->result_value, v, sizeof(v));
		tlbot_buf_init(&m, 400);
		if (r->metric)
			tlbot_buf_printf(&m, "%s%s%s%s%s%s%s", r->metric, b[0] ? ": " : "", b,
					 t[0] ? " → " : "", t, r->unit ? " " : "", r->unit ? r->unit : "");
		if (tlbot_buf_adds(&x->out, "|") != 0)
			x->full = 1;
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
		tlbot_buf_release(&h);
		tlbot_buf_release(&m);
		break;
	}
	}
	json_decref(larr);
	free(learned);
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
		for (i = 0; columns[i]; i++)
			tlbot_csv_text(&x->csv, columns[i]);
		tlbot_csv_end_row(&x->csv);
		break;
	case FMT_JSON:
		tlbot_buf_adds(&x->out, "{\"experiments\": [");
		break;
	case FMT_MD:
		html_add(x, "<table><thead><tr>", 0);
		tlbot_buf_adds(&x->out, "|");
		for (i = 0; md_columns[i]; i++) {
			tlbot_buf_printf(&x->out, " %s |", md_columns[i]);
			html_add(x, "<th>", 0);
			html_add(x, md_columns[i], 1);
			html_add(x, "</th>", 0);
		}
		tlbot_buf_adds(&x->out, "\n|");
		for (i = 0; md_columns[i]; i++)
			tlbot_buf_adds(&x->out, "---|");
		tlbot_buf_adds(&x->out, "\n");
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

int
tlbot_exp_export(struct tlbot_ctx *ctx, const struct tlbot_args *a)
{
	static const char *const statuses[] = { "proposed", "running", "concluded", "abandoned", NULL };
	const char *fmtname = tlbot_args_get(a, "format"), *st = tlbot_args_get(a, "status");
	const char *ch = tlbot_args_get(a, "challenge"), *room = tlbot_ctx_room(ctx);
	static const char *const exts[] = { "md", "csv", "json" };
	static const char *const mimes[] = { "text/markdown; charset=utf-8",
					     "text/csv; charset=utf-8", "application/json" };
	static const char *const names[] = { "Markdown", "CSV", "JSON" };
	struct export x;
	sqlite3 *db = tlbot_ctx_db(ctx);
	sqlite3_stmt *s = NULL;
	char sql[1024], fname[96], day[11], caption[256];
	int64_t cid = 0;
	int rc, open_only = 0, i;
	size_t k;

	memset(&x, 0, sizeof(x));
	if (fmtname == NULL || strcasecmp(fmtname, "md") == 0 || strcasecmp(fmtname, "markdown") == 0)
		x.fmt = FMT_MD;
	else if (strcasecmp(fmtname, "csv") == 0)
		x.fmt = FMT_CSV;
	else if (strcasecmp(fmtname, "json") == 0)
		x.fmt = FMT_JSON;
	else
		return tlbot_exp_fail(ctx, "unknown format '%s': use --format md, csv or json", fmtname);
	if (ch && tlbot_exp_parse_ref(ch, 'C', &cid) != 0)
		return tlbot_exp_fail(ctx, "bad challenge '%s': give its id such as C-12", ch);
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
	snprintf(sql, sizeof(sql), "SELECT " TLBOT_EXP_COLUMNS " FROM experiments e WHERE"
		 " e.room_id = ?1%s%s ORDER BY e.id",
		 ch ? " AND e.challenge_id = ?2" : "",
		 open_only ? " AND e.status IN ('proposed', 'running')" : st ? " AND e.status = ?3" : "");
	tlbot_buf_init(&x.out, EXPORT_MAX);
	tlbot_buf_init(&x.html, TLBOT_MSG_MAX / 2);
	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "SELECT text FROM experiment_learnings WHERE experiment_id = ?"
			       " ORDER BY id", -1, &x.learn, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "SELECT text, by, at FROM experiment_notes WHERE experiment_id = ?"
			       " ORDER BY id", -1, &x.notes, NULL) != SQLITE_OK) {
		rc = tlbot_exp_db_fail(ctx);
		goto out;
	}
	sqlite3_bind_text(s, 1, room, -1, SQLITE_TRANSIENT);
	if (ch)
		sqlite3_bind_int64(s, 2, cid);
	if (st && !open_only)
		sqlite3_bind_text(s, 3, st, -1, SQLITE_TRANSIENT);
	write_head(&x);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct exp_rec r;

		if (tlbot_exp_rec_read(s, &r) != 0) {
			rc = SQLITE_NOMEM;
			break;
		}
		if (write_one(&x, &r) != 0)
			rc = SQLITE_ERROR;
		tlbot_exp_rec_release(&r);
		if (rc == SQLITE_ERROR || x.full)
			break;
	}
	if (x.full) {
		rc = tlbot_exp_fail(ctx, "the export is too large (over %u MB): narrow it with --challenge"
				" C-12 or --status S", EXPORT_MAX / (1024 * 1024));
		goto out;
	}
	if (rc != SQLITE_DONE || write_tail(&x, room, tlbot_ctx_now(ctx)) != 0) {
		rc = tlbot_exp_db_fail(ctx);
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
	if (x.out.len < EXPORT_INLINE_MAX && !x.html_full) {
		struct tlbot_msg m;

		tlbot_msg_init(&m);
		tlbot_msg_bold(&m, "Experiment log");
		tlbot_msg_textf(&m, " — %zu experiment%s (%s)", x.n, x.n == 1 ? "" : "s", names[x.fmt]);
		tlbot_msg_br(&m);
		if (x.fmt == FMT_MD) {
			tlbot_msg_plain(&m, tlbot_buf_str(&x.out));
			tlbot_msg_html(&m, tlbot_buf_str(&x.html));
		} else {
			struct tlbot_buf esc;
			/* the CSV's byte order mark is for files only */
			const char *text = tlbot_buf_str(&x.out);

			if (x.fmt == FMT_CSV)
				text += strlen(TLBOT_CSV_BOM);
			tlbot_buf_init(&esc, TLBOT_MSG_MAX);
			tlbot_buf_add_html(&esc, text, 0);
			tlbot_msg_plain(&m, text);
			tlbot_msg_html(&m, "<pre><code>");
			tlbot_msg_html(&m, tlbot_buf_str(&esc));
			tlbot_msg_html(&m, "</code></pre>");
			tlbot_buf_release(&esc);
		}
		rc = tlbot_reply(ctx, &m);
		goto out;
	}
	if (tlbot_tz_date(tlbot_ctx_default_tz(ctx) ? tlbot_ctx_default_tz(ctx) : "UTC",
			  tlbot_ctx_now(ctx), day) != 0)
		snprintf(day, sizeof(day), "export");
	if (ch)
		snprintf(fname, sizeof(fname), "experiments-C-%lld-%s.%s", (long long)cid, day, exts[x.fmt]);
	else
		snprintf(fname, sizeof(fname), "experiments-%s.%s", day, exts[x.fmt]);
	snprintf(caption, sizeof(caption), "%s (%zu experiment%s, %s%s)", fname, x.n,
		 x.n == 1 ? "" : "s", names[x.fmt], x.fmt == FMT_CSV ? ", UTF-8" : "");
	k = x.out.len;
	rc = tlbot_replyf(ctx, "Exported %zu experiment%s as %s (%zu KB): the file follows.", x.n,
			  x.n == 1 ? "" : "s", fname, (k + 1023) / 1024);
	if (rc == 0)
		rc = tlbot_send_file(ctx, room, fname, mimes[x.fmt], x.out.data, k, caption);
	if (rc != 0)
		rc = tlbot_exp_fail(ctx, "could not queue the export file");
out:
	sqlite3_finalize(s);
	sqlite3_finalize(x.learn);
	sqlite3_finalize(x.notes);
	tlbot_buf_release(&x.out);
	tlbot_buf_release(&x.html);
	return rc;
}
