/* The programme view of the experiment log: in the configured digest_room
 * (the programme room), "!exp list --all-rooms" lists every team's
 * experiments and "!exp search WORDS" finds them by title, hypothesis,
 * finding and learnings (never notes, which can hold case detail).
 * Nowhere else do these cross rooms. Read only. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "experiment.h"

#define LIST_MAX 30   /* lines in one answer */

int
tlbot_exp_in_programme_room(struct tlbot_ctx *ctx)
{
	const char *pr = tlbot_ctx_digest_room(ctx), *room = tlbot_ctx_room(ctx);

	return pr && room && strcmp(pr, room) == 0;
}

int
tlbot_exp_programme_only(struct tlbot_ctx *ctx, const char *what)
{
	if (tlbot_ctx_digest_room(ctx) == NULL)
		return tlbot_exp_fail(ctx,
				      "%s works in the programme room only, and none is configured"
				      " (digest_room in the configuration)",
				      what);
	return tlbot_exp_fail(ctx,
			      "%s works in the programme room only: this room sees its own"
			      " experiments (%sexp list)",
			      what, tlbot_ctx_prefix(ctx));
}

/* "E-3" linked to the message that created it. */
static void
exp_ref(struct tlbot_msg *m, int64_t id, const char *room, const char *event, const char *title)
{
	char label[32], href[1024];

	snprintf(label, sizeof(label), "E-%lld", (long long)id);
	if (room && event) {
		snprintf(href, sizeof(href), "https://matrix.to/#/%s/%s", room, event);
		tlbot_msg_link(m, label, href, title);
	} else {
		tlbot_msg_text(m, label);
	}
}

/* One line: "E-3 [running] title — Team room, C-2, owner". */
static void
line(struct tlbot_msg *m, struct tlbot_ctx *ctx, const struct tlbot_db_rows *q)
{
	const char *room = tlbot_db_col_text(q, 1);
	const char *title = tlbot_db_col_text(q, 2);
	char *name = room ? tlbot_ctx_room_name(ctx, room) : NULL;
	char c[32];

	tlbot_msg_html(m, "<li>");
	tlbot_msg_plain(m, "\n• ");
	exp_ref(m, tlbot_db_col_int(q, 0), room, tlbot_db_col_text(q, 5), title);
	tlbot_msg_textf(m, " [%s] ", tlbot_db_col_text(q, 3));
	tlbot_msg_text(m, title ? title : "");
	tlbot_msg_text(m, " — ");
	tlbot_msg_text(m, name ? name : (room ? room : "?"));
	snprintf(c, sizeof(c), ", C-%lld, ", (long long)tlbot_db_col_int(q, 4));
	tlbot_msg_text(m, c);
	tlbot_msg_user(m, tlbot_db_col_text(q, 6));
	tlbot_msg_html(m, "</li>");
	free(name);
}

#define COLS "e.id, e.room_id, e.title, e.status, e.challenge_id, e.created_event, e.owner"

int
tlbot_exp_list_all(struct tlbot_ctx *ctx, const struct tlbot_args *a)
{
	const char *st = tlbot_args_get(a, "status");
	struct tlbot_msg m;
	struct tlbot_db_rows q;
	int n = 0, rc;

	if (!tlbot_exp_in_programme_room(ctx))
		return tlbot_exp_programme_only(ctx, "--all-rooms");
	if (tlbot_db_query(ctx, &q, "SELECT " COLS " FROM experiments e WHERE (?1 IS NULL OR"
			   " e.status = ?1 OR (?1 = 'open' AND e.status IN ('proposed', 'running')))"
			   " ORDER BY e.updated_at DESC, e.id DESC LIMIT ?2", "ti", st,
			   (int64_t)LIST_MAX + 1) != 0)
		return -1;
	tlbot_msg_init(&m);
	tlbot_msg_bold(&m, "Experiments in every team");
	if (st)
		tlbot_msg_textf(&m, " (%s)", st);
	tlbot_msg_html(&m, "<ul>");
	while ((rc = tlbot_db_next(&q)) > 0 && n < LIST_MAX) {
		line(&m, ctx, &q);
		n++;
	}
	tlbot_msg_html(&m, "</ul>");
	tlbot_db_done(&q);
	if (rc < 0) {
		tlbot_msg_release(&m);
		return -1;
	}
	if (n == 0) {
		tlbot_msg_release(&m);
		return tlbot_replyf(ctx, "No%s%s experiments in any team yet.", st ? " " : "",
				    st ? st : "");
	}
	if (rc > 0)
		tlbot_msg_textf(&m, "\nThe %d most recently changed; narrow with --status S or"
				" %sexp search WORDS.", LIST_MAX, tlbot_ctx_prefix(ctx));
	return tlbot_reply(ctx, &m);
}

/* "%word%" for LIKE with \ as the escape character. */
static char *
like_pattern(const char *w)
{
	size_t n = strlen(w), i, j = 0;
	char *p = malloc(n * 2 + 3);

	if (p == NULL)
		return NULL;
	p[j++] = '%';
	for (i = 0; i < n; i++) {
		if (w[i] == '%' || w[i] == '_' || w[i] == '\\')
			p[j++] = '\\';
		p[j++] = w[i];
	}
	p[j++] = '%';
	p[j] = '\0';
	return p;
}

int
tlbot_exp_search(struct tlbot_ctx *ctx, const struct tlbot_args *a)
{
	/* every word must appear in one of the searched fields; notes are
	 * not searched */
	static const char *const sql =
		"SELECT " COLS " FROM experiments e WHERE 1"
		" AND (?1 IS NULL OR (IFNULL(e.title, '') || ' ' || IFNULL(e.believe, '') || ' ' ||"
		"  IFNULL(e.result_in, '') || ' ' || IFNULL(e.know_when, '') || ' ' ||"
		"  IFNULL(e.finding, '') || ' ' || IFNULL((SELECT group_concat(l.text, ' ') FROM"
		"  experiment_learnings l WHERE l.experiment_id = e.id), '')) LIKE ?1 ESCAPE '\\')"
		" AND (?2 IS NULL OR (IFNULL(e.title, '') || ' ' || IFNULL(e.believe, '') || ' ' ||"
		"  IFNULL(e.result_in, '') || ' ' || IFNULL(e.know_when, '') || ' ' ||"
		"  IFNULL(e.finding, '') || ' ' || IFNULL((SELECT group_concat(l.text, ' ') FROM"
		"  experiment_learnings l WHERE l.experiment_id = e.id), '')) LIKE ?2 ESCAPE '\\')"
		" AND (?3 IS NULL OR (IFNULL(e.title, '') || ' ' || IFNULL(e.believe, '') || ' ' ||"
		"  IFNULL(e.result_in, '') || ' ' || IFNULL(e.know_when, '') || ' ' ||"
		"  IFNULL(e.finding, '') || ' ' || IFNULL((SELECT group_concat(l.text, ' ') FROM"
		"  experiment_learnings l WHERE l.experiment_id = e.id), '')) LIKE ?3 ESCAPE '\\')"
		" ORDER BY e.updated_at DESC, e.id DESC LIMIT ?4";
	struct tlbot_msg m;
	struct tlbot_db_rows q;
	char words[256] = "", *pat[3] = { NULL, NULL, NULL };
	size_t i, len = 0;
	int n = 0, rc;

	if (!tlbot_exp_in_programme_room(ctx))
		return tlbot_exp_programme_only(ctx, "search");
	if (a->argc == 0)
		return tlbot_exp_fail(ctx, "search for what? %sexp search WORDS (titles, hypotheses,"
				      " findings and learnings)", tlbot_ctx_prefix(ctx));
	if (a->argc > 3)
		return tlbot_exp_fail(ctx, "give at most 3 words to search for");
	for (i = 0; i < a->argc; i++) {
		int w;

		pat[i] = like_pattern(a->argv[i]);
		if (pat[i] == NULL) {
			free(pat[0]);
			free(pat[1]);
			return tlbot_exp_fail(ctx, "out of memory");
		}
		w = snprintf(words + len, sizeof(words) - len, "%s%s", i ? " " : "", a->argv[i]);
		if (w > 0 && (size_t)w < sizeof(words) - len)
			len += (size_t)w;
	}
	rc = tlbot_db_query(ctx, &q, sql, "ttti", pat[0], pat[1], pat[2], (int64_t)LIST_MAX + 1);
	free(pat[0]);
	free(pat[1]);
	free(pat[2]);
	if (rc != 0)
		return -1;
	tlbot_msg_init(&m);
	tlbot_msg_bold(&m, "Experiments matching");
	tlbot_msg_textf(&m, " “%s” in every team", words);
	tlbot_msg_html(&m, "<ul>");
	while ((rc = tlbot_db_next(&q)) > 0 && n < LIST_MAX) {
		line(&m, ctx, &q);
		n++;
	}
	tlbot_msg_html(&m, "</ul>");
	tlbot_db_done(&q);
	if (rc < 0) {
		tlbot_msg_release(&m);
		return -1;
	}
	if (n == 0) {
		tlbot_msg_release(&m);
		return tlbot_replyf(ctx, "No experiment in any team mentions “%s” in its title,"
				    " hypothesis, finding or learnings.", words);
	}
	if (rc > 0)
		tlbot_msg_textf(&m, "\nThe %d most recently changed; add a word to narrow it.",
				LIST_MAX);
	return tlbot_reply(ctx, &m);
}
