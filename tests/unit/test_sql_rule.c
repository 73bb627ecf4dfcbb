/* The rule "SQL only through bound parameters" (docs/conventions.md, habit 4), checked
 * on the source text of bot/ and commands/:
 *
 *   1. no printf-style SQL builders: sqlite3_mprintf, sqlite3_vmprintf,
 *      sqlite3_snprintf, sqlite3_str_appendf;
 *   2. no SQL text formatted with snprintf/tlbot_buf_printf & co (a format
 *      string holding SQL) or appended with tlbot_buf_add(s)/strcat, except
 *      the audited sites below, which splice only constant fragments chosen
 *      by the code (a column from a fixed list, optional WHERE clauses whose
 *      values are bound) -- each new one must be reviewed and added here;
 *   3. sqlite3_prepare*() and sqlite3_exec() get a string literal as their
 *      SQL, or the parameter `sql` of a wrapper (whose callers rule 2 keeps
 *      honest).
 *
 * Comments are ignored; string literals are read as written. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "srctree.h"
#include "tap.h"

/* Audited exceptions to rule 2: file and a piece of the format string. */
static const struct {
	const char *file, *format, *why;
} audited[] = {
	{ "commands/record.c", "SELECT ", "the SELECT list of a family's field table (constants)" },
	{ "commands/record.c", " FROM %s %s ", "the table and alias of a field table (constants)" },
	{ "commands/record.c", "%s%s%s%s = ?%d", "the key columns of a field table, values bound" },
	{ "commands/record.c", "DELETE FROM %s", "the table of a field table, key bound" },
	{ "commands/record.c", "INSERT INTO %s(", "the columns of a field table, values bound" },
	{ "commands/record.c", ") VALUES (", "one ? per field of the table" },
	{ "commands/record.c", "UPDATE %s SET %s = ?1", "a column of a field table, value bound" },
	{ "commands/record.c", ", %s = ?2", "the touch column of a field table, value bound" },
	{ "commands/experiment.c", "e.room_id = ?1%s%s%s%s", "constant optional clauses, values bound" },
	{ "commands/experiment.c", " AND e.challenge_id = ?3", "constant clause, value bound" },
	{ "commands/experiment.c", "SELECT count(*) FROM experiments e WHERE %s", "the WHERE above" },
	{ "commands/experiment.c", " WHERE %s ORDER BY e.id DESC LIMIT %d OFFSET ?6",
	  "the WHERE above; %d is a compile-time page size" },
	{ "commands/experiment_export.c", " e.room_id = ?1%s%s ORDER BY e.id",
	  "constant optional clauses, values bound" },
	{ NULL, NULL, NULL },
};

static const char *const builders[] = { "sqlite3_mprintf", "sqlite3_vmprintf", "sqlite3_snprintf",
					"sqlite3_str_appendf", "sqlite3_str_vappendf", NULL };

/* printf-like functions and the index of their format argument */
static const struct {
	const char *name;
	int fmt;
} formatters[] = {
	{ "snprintf", 2 }, { "vsnprintf", 2 }, { "sprintf", 1 }, { "vsprintf", 1 },
	{ "asprintf", 1 }, { "tlbot_buf_printf", 1 }, { "tlbot_buf_vprintf", 1 },
	{ "tlbot_buf_adds", 1 }, { "tlbot_buf_add", 1 }, { "strcat", 1 }, { "strncat", 1 },
	{ NULL, 0 },
};

static const char *const sql_words[] = { "SELECT ", "INSERT ", "UPDATE ", "DELETE ", "REPLACE INTO",
					 "CREATE ", "DROP ", "ALTER ", " WHERE ", " FROM ", "VALUES (",
					 "VALUES(", "= ?", "=?", NULL };

static int violations;

static int
line_of(const char *text, const char *p)
{
	int n = 1;

	for (; text < p; text++)
		n += *text == '\n';
	return n;
}

/* Find the call's arguments: p points just after "name(". Returns the
 * number of arguments and fills starts/ends (top-level commas). */
static int
split_args(const char *p, const char **starts, const char **ends, int max)
{
	int depth = 0, n = 0, in_str = 0, in_chr = 0;

	starts[0] = p;
	for (; *p; p++) {
		if (in_str || in_chr) {
			if (*p == '\\' && p[1])
				p++;
			else if ((in_str && *p == '"') || (in_chr && *p == '\''))
				in_str = in_chr = 0;
			continue;
		}
		if (*p == '"')
			in_str = 1;
		else if (*p == '\'')
			in_chr = 1;
		else if (*p == '(' || *p == '[' || *p == '{')
			depth++;
		else if ((*p == ')' || *p == ']' || *p == '}') && depth > 0)
			depth--;
		else if (*p == ')' || (*p == ',' && depth == 0)) {
			if (n < max)
				ends[n] = p;
			n++;
			if (*p == ')')
				return n;
			if (n < max)
				starts[n] = p + 1;
		}
	}
	return n;
}

/* The string literals of [a, b) concatenated (escapes kept as written).
 * Caller frees. */
static char *
literals(const char *a, const char *b)
{
	char *out = malloc((size_t)(b - a) + 1);
	size_t o = 0;
	int in_str = 0;

	if (out == NULL)
		return NULL;
	for (; a < b; a++) {
		if (in_str) {
			if (*a == '\\' && a + 1 < b) {
				out[o++] = *a++;
				out[o++] = *a;
			} else if (*a == '"') {
				in_str = 0;
			} else {
				out[o++] = *a;
			}
		} else if (*a == '"') {
			in_str = 1;
		}
	}
	out[o] = '\0';
	return out;
}

static const char *
skip_space(const char *p, const char *end)
{
	while (p < end && isspace((unsigned char)*p))
		p++;
	return p;
}

static int
is_audited(const char *rel, const char *fmt)
{
	size_t i;

	for (i = 0; audited[i].file; i++)
		if (strcmp(audited[i].file, rel) == 0 && strstr(fmt, audited[i].format))
			return 1;
	return 0;
}

/* Each occurrence of name( as a call (not part of a longer identifier). */
static const char *
find_call(const char *from, const char *name)
{
	size_t n = strlen(name);
	const char *p = from;

	while ((p = strstr(p, name)) != NULL) {
		const char *q = p + n;

		if ((p == from || !(isalnum((unsigned char)p[-1]) || p[-1] == '_')) &&
		    !(isalnum((unsigned char)*q) || *q == '_')) {
			while (*q == ' ' || *q == '\t' || *q == '\n')
				q++;
			if (*q == '(')
				return q + 1;
		}
		p += n;
	}
	return NULL;
}

static void
check_file(const char *root, const char *rel)
{
	char path[4096];
	char *text;
	const char *p;
	size_t i;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	text = srctree_load(path);
	if (text == NULL) {
		CHECK(text != NULL);
		return;
	}
	/* rule 1 */
	for (i = 0; builders[i]; i++) {
		for (p = text; (p = find_call(p, builders[i])) != NULL;) {
			printf("# %s:%d: %s builds SQL from a format: bind parameters instead\n", rel,
			       line_of(text, p), builders[i]);
			violations++;
		}
	}
	/* rule 2 */
	for (i = 0; formatters[i].name; i++) {
		for (p = text; (p = find_call(p, formatters[i].name)) != NULL;) {
			const char *st[16], *en[16];
			int n = split_args(p, st, en, 16), k = formatters[i].fmt;
			char *fmt;
			size_t w;

			if (n <= k || k >= 16)
				continue;
			fmt = literals(st[k], en[k]);
			for (w = 0; fmt && sql_words[w]; w++)
				if (strstr(fmt, sql_words[w]))
					break;
			if (fmt && sql_words[w] && !is_audited(rel, fmt)) {
				printf("# %s:%d: %s() builds SQL text (\"%.60s\"): use a literal with ? "
				       "parameters, or audit it in tests/unit/test_sql_rule.c\n",
				       rel, line_of(text, p), formatters[i].name, fmt);
				violations++;
			}
			free(fmt);
		}
	}
	/* rule 3 */
	{
		static const char *const preps[] = { "sqlite3_prepare_v3", "sqlite3_prepare_v2",
						     "sqlite3_prepare16_v2", "sqlite3_prepare",
						     "sqlite3_exec", NULL };

		for (i = 0; preps[i]; i++) {
			for (p = text; (p = find_call(p, preps[i])) != NULL;) {
				const char *st[8], *en[8], *a;
				int n = split_args(p, st, en, 8);

				if (n < 2)
					continue;
				a = skip_space(st[1], en[1]);
				if (*a == '"')
					continue; /* a literal (perhaps with macros of literals) */
				if ((size_t)(en[1] - a) >= 3 && strncmp(a, "sql", 3) == 0 &&
				    skip_space(a + 3, en[1]) == en[1])
					continue; /* a wrapper's parameter, or an audited buffer */
				printf("# %s:%d: %s() with SQL '%.*s' that is not a literal\n", rel,
				       line_of(text, p), preps[i], (int)(en[1] - a), a);
				violations++;
			}
		}
	}
	free(text);
}

TEST(sql_only_through_bound_parameters)
{
	int files = 0;

	violations = 0;
	srctree_walk(srctree_root(), "bot", check_file, &files);
	srctree_walk(srctree_root(), "commands", check_file, &files);
	printf("# %d source files checked\n", files);
	CHECK(files > 20);
	CHECK_INT(violations, ==, 0);
}

/* The checker itself: it must see what it is meant to see. */
TEST(checker_catches_violations)
{
	const char *st[16], *en[16];
	char *f;
	int n;

	n = split_args("db, \"SELECT a FROM t WHERE b = ?\", -1, &s, NULL)", st, en, 16);
	CHECK_INT(n, ==, 5);
	f = literals(st[1], en[1]);
	CHECK(f && strcmp(f, "SELECT a FROM t WHERE b = ?") == 0);
	free(f);
	n = split_args("buf, sizeof(buf), \"DELETE FROM t WHERE id = %s\", id)", st, en, 16);
	CHECK_INT(n, ==, 4);
	f = literals(st[2], en[2]);
	CHECK(f && strstr(f, "DELETE ") != NULL);
	CHECK(!is_audited("commands/new.c", f));
	free(f);
	CHECK(find_call("x = my_snprintf(a)", "snprintf") == NULL);
	CHECK(find_call("x = snprintf (a)", "snprintf") != NULL);
}

static const struct tap_test tests[] = {
	TEST_ENTRY(sql_only_through_bound_parameters),
	TEST_ENTRY(checker_catches_violations),
	{ NULL, NULL },
};

int
main(int argc, char **argv)
{
	return tap_run(tests, argc, argv);
}
