/* bot/util/export.c: CSV writer and reader (RFC 4180), formula guard, exact
 * numbers, Markdown cells. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "tlbot/export.h"

static const char *const cells[] = {
	"plain", "", "comma, inside", "\"quoted\" \"twice\"", "line\nbreak", "crlf\r\nend",
	"=SUM(A1:A3)", "+1", "-x", "@cmd", "\ttab", "'already", "café 🚀 日本語", " spaces ",
	NULL,
};

TEST(csv_round_trip)
{
	struct tlbot_buf out, f;
	struct tlbot_csv c;
	struct tlbot_csv_reader r;
	size_t i, n = 0;
	int rc, rows = 0;

	tlbot_buf_init(&out, 1 << 16);
	tlbot_buf_init(&f, 1 << 16);
	tlbot_buf_adds(&out, TLBOT_CSV_BOM);
	tlbot_csv_init(&c, &out, 0);
	for (rows = 0; rows < 3; rows++) {
		for (i = 0; cells[i]; i++)
			CHECK_INT(tlbot_csv_text(&c, cells[i]), ==, 0);
		CHECK_INT(tlbot_csv_end_row(&c), ==, 0);
	}
	CHECK_CONTAINS(tlbot_buf_str(&out), "plain,,\"comma, inside\",\"\"\"quoted\"\" \"\"twice\"\"\","
		       "\"line\nbreak\",\"crlf\r\nend\",=SUM(A1:A3),");
	tlbot_csv_reader_init(&r, out.data, out.len);
	rows = 0;
	i = 0;
	while ((rc = tlbot_csv_read_field(&r, &f)) == 1) {
		CHECK_STR(tlbot_buf_str(&f), cells[i]);
		i++;
		n++;
		if (r.row_end) {
			CHECK_INT(i, ==, 14);
			i = 0;
			rows++;
		}
	}
	CHECK_INT(rc, ==, 0);
	CHECK_INT(rows, ==, 3);
	CHECK_INT(n, ==, 42);
	tlbot_buf_release(&out);
	tlbot_buf_release(&f);
}

TEST(csv_formula_guard)
{
	struct tlbot_buf out;
	struct tlbot_csv c;

	tlbot_buf_init(&out, 4096);
	tlbot_csv_init(&c, &out, TLBOT_CSV_FORMULA_GUARD);
	tlbot_csv_text(&c, "=1+1");
	tlbot_csv_text(&c, "+1");
	tlbot_csv_text(&c, "-x");
	tlbot_csv_text(&c, "@SUM(1)");
	tlbot_csv_text(&c, "=HYPERLINK(\"a\",\"b\")");
	tlbot_csv_text(&c, "ok =");
	tlbot_csv_plain(&c, "@alice:example.org");
	tlbot_csv_number(&c, -3.5);
	tlbot_csv_end_row(&c);
	CHECK_STR(tlbot_buf_str(&out), "'=1+1,'+1,'-x,'@SUM(1),\"'=HYPERLINK(\"\"a\"\",\"\"b\"\")\","
		  "ok =,@alice:example.org,-3.5\r\n");
	tlbot_buf_release(&out);
}

TEST(csv_full_buffer_unchanged)
{
	struct tlbot_buf out;
	struct tlbot_csv c;

	tlbot_buf_init(&out, 10);
	tlbot_csv_init(&c, &out, 0);
	CHECK_INT(tlbot_csv_text(&c, "abc"), ==, 0);
	CHECK_INT(tlbot_csv_text(&c, "a much longer cell"), ==, -1);
	CHECK_STR(tlbot_buf_str(&out), "abc");
	tlbot_buf_release(&out);
}

TEST(csv_reader_rejects_malformed)
{
	static const char *const bad[] = { "\"open", "a\"b", "\"x\"y", NULL };
	struct tlbot_buf f;
	struct tlbot_csv_reader r;
	size_t i;

	tlbot_buf_init(&f, 1024);
	for (i = 0; bad[i]; i++) {
		int rc;

		tlbot_csv_reader_init(&r, bad[i], strlen(bad[i]));
		while ((rc = tlbot_csv_read_field(&r, &f)) == 1)
			;
		CHECK_INT(rc, ==, -1);
	}
	/* LF-only files (written by other tools) read too */
	tlbot_csv_reader_init(&r, "a,b\nc,d\n", 8);
	CHECK_INT(tlbot_csv_read_field(&r, &f), ==, 1);
	CHECK_INT(tlbot_csv_read_field(&r, &f), ==, 1);
	CHECK(r.row_end);
	CHECK_STR(tlbot_buf_str(&f), "b");
	CHECK_INT(tlbot_csv_read_field(&r, &f), ==, 1);
	CHECK_STR(tlbot_buf_str(&f), "c");
	tlbot_buf_release(&f);
}

TEST(exact_numbers)
{
	static const double v[] = { 0, 1, -1, 0.1, 0.30000000000000004, 1e6, 1e-7, 123456789.125,
				    -3.25, 1.7976931348623157e308, 5e-324, 2.0 / 3.0 };
	char out[40];
	size_t i;

	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		CHECK_INT(tlbot_fmt_double(v[i], out, sizeof(out)), ==, 0);
		CHECK(strtod(out, NULL) == v[i]);
	}
	tlbot_fmt_double(0.1, out, sizeof(out));
	CHECK_STR(out, "0.1");
	tlbot_fmt_double(1e6, out, sizeof(out));
	CHECK_STR(out, "1000000");
	tlbot_fmt_double(-0.0, out, sizeof(out));
	CHECK_STR(out, "0");
	CHECK_INT(tlbot_fmt_double(NAN, out, sizeof(out)), ==, -1);
	CHECK_INT(tlbot_fmt_double(INFINITY, out, sizeof(out)), ==, -1);
	CHECK_INT(tlbot_fmt_double(1, out, 8), ==, -1);
}

TEST(markdown_cells)
{
	struct tlbot_buf b;

	tlbot_buf_init(&b, 4096);
	CHECK_INT(tlbot_md_cell(&b, "a | b *c* _d_ `e` [f](g) <h> ~i~ & \\ line\r\nnext\nlast"), ==, 0);
	CHECK_STR(tlbot_buf_str(&b), "a \\| b \\*c\\* \\_d\\_ \\`e\\` \\[f\\](g) \\<h\\> \\~i\\~ \\& \\\\ line<br>next<br>last");
	tlbot_buf_release(&b);
}

static const struct tap_test tests[] = {
	TEST_ENTRY(csv_round_trip),
	TEST_ENTRY(csv_formula_guard),
	TEST_ENTRY(csv_full_buffer_unchanged),
	TEST_ENTRY(csv_reader_rejects_malformed),
	TEST_ENTRY(exact_numbers),
	TEST_ENTRY(markdown_cells),
	TEST_END,
};

TAP_MAIN(tests)
