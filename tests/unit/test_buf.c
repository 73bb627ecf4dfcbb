/* Tests for bot/util/buf.c: the capped growable buffer. */
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "tlbot/buf.h"

TEST(empty)
{
	struct tlbot_buf b;
	char *s;

	tlbot_buf_init(&b, 16);
	CHECK(b.data == NULL);
	CHECK_INT(b.len, ==, 0);
	CHECK_STR(tlbot_buf_str(&b), "");
	/* adding nothing is fine and makes it NUL-terminated storage */
	CHECK_INT(tlbot_buf_add(&b, "", 0), ==, 0);
	CHECK_STR(tlbot_buf_str(&b), "");
	s = tlbot_buf_detach(&b);
	CHECK_STR(s, "");
	free(s);
	/* detach of a never-used buffer still gives a string */
	s = tlbot_buf_detach(&b);
	CHECK_OR_RETURN(s != NULL);
	CHECK_STR(s, "");
	free(s);
	tlbot_buf_release(&b);
}

TEST(append_and_grow)
{
	struct tlbot_buf b;
	size_t i;

	tlbot_buf_init(&b, 100000);
	CHECK_INT(tlbot_buf_adds(&b, "hello"), ==, 0);
	CHECK_INT(tlbot_buf_addc(&b, ' '), ==, 0);
	CHECK_INT(tlbot_buf_add(&b, "world!!", 5), ==, 0);
	CHECK_STR(tlbot_buf_str(&b), "hello world");
	CHECK_INT(b.len, ==, 11);
	/* grows well past the first allocation and stays terminated */
	for (i = 0; i < 1000; i++)
		CHECK_INT(tlbot_buf_adds(&b, "0123456789"), ==, 0);
	CHECK_INT(b.len, ==, 11 + 10000);
	CHECK_INT(strlen(tlbot_buf_str(&b)), ==, b.len);
	CHECK(b.alloc > b.len);
	/* binary data with NUL bytes is kept by length */
	tlbot_buf_reset(&b);
	CHECK_INT(tlbot_buf_add(&b, "a\0b", 3), ==, 0);
	CHECK_INT(b.len, ==, 3);
	CHECK(memcmp(b.data, "a\0b", 4) == 0);
	tlbot_buf_release(&b);
	CHECK(b.data == NULL);
	CHECK_INT(b.len, ==, 0);
}

TEST(cap_is_enforced)
{
	struct tlbot_buf b;

	tlbot_buf_init(&b, 8);
	CHECK_INT(tlbot_buf_adds(&b, "12345678"), ==, 0);   /* exactly the cap */
	CHECK_INT(b.len, ==, 8);
	CHECK_INT(tlbot_buf_addc(&b, '9'), ==, -1);         /* one more fails */
	CHECK_STR(tlbot_buf_str(&b), "12345678");           /* unchanged */
	CHECK(b.alloc <= 9);                                /* never allocates past max+1 */
	tlbot_buf_reset(&b);
	CHECK_INT(b.len, ==, 0);
	CHECK_STR(tlbot_buf_str(&b), "");
	CHECK_INT(tlbot_buf_adds(&b, "123456789"), ==, -1); /* too long at once */
	CHECK_INT(b.len, ==, 0);
	CHECK_STR(tlbot_buf_str(&b), "");
	/* an absurd length does not overflow the size arithmetic */
	CHECK_INT(tlbot_buf_add(&b, "x", (size_t)-1), ==, -1);
	CHECK_INT(tlbot_buf_add(&b, "x", (size_t)-1 - b.len), ==, -1);
	tlbot_buf_release(&b);

	/* a zero cap takes nothing */
	tlbot_buf_init(&b, 0);
	CHECK_INT(tlbot_buf_addc(&b, 'x'), ==, -1);
	CHECK_INT(tlbot_buf_add(&b, "", 0), ==, 0);
	CHECK_STR(tlbot_buf_str(&b), "");
	tlbot_buf_release(&b);
}

TEST(printf)
{
	struct tlbot_buf b;

	tlbot_buf_init(&b, 32);
	CHECK_INT(tlbot_buf_printf(&b, "%s has %d item%s", "alice", 3, "s"), ==, 0);
	CHECK_STR(tlbot_buf_str(&b), "alice has 3 items");
	CHECK_INT(tlbot_buf_printf(&b, ", %05.1f%%", 2.5), ==, 0);
	CHECK_STR(tlbot_buf_str(&b), "alice has 3 items, 002.5%");
	/* past the cap: fails and leaves the contents alone */
	CHECK_INT(tlbot_buf_printf(&b, "%s", "0123456789"), ==, -1);
	CHECK_STR(tlbot_buf_str(&b), "alice has 3 items, 002.5%");
	CHECK_INT(b.len, ==, 25);
	/* right up to the cap */
	CHECK_INT(tlbot_buf_printf(&b, "%7s", "x"), ==, 0);
	CHECK_INT(b.len, ==, 32);
	CHECK_STR(tlbot_buf_str(&b) + 25, "      x");
	CHECK_INT(tlbot_buf_printf(&b, "%s", ""), ==, 0);
	tlbot_buf_release(&b);
}

TEST(html_escape)
{
	struct tlbot_buf b;

	tlbot_buf_init(&b, 1024);
	CHECK_INT(tlbot_buf_add_html(&b, "<b>Tom & \"Jerry\"</b> 'x'", 0), ==, 0);
	CHECK_STR(tlbot_buf_str(&b), "&lt;b&gt;Tom &amp; &quot;Jerry&quot;&lt;/b&gt; &#39;x&#39;");
	tlbot_buf_reset(&b);
	CHECK_INT(tlbot_buf_add_html(&b, "line1\nline2", 1), ==, 0);
	CHECK_STR(tlbot_buf_str(&b), "line1<br/>line2");
	tlbot_buf_reset(&b);
	CHECK_INT(tlbot_buf_add_html(&b, "line1\nline2", 0), ==, 0);
	CHECK_STR(tlbot_buf_str(&b), "line1\nline2");
	tlbot_buf_reset(&b);
	/* UTF-8 passes through untouched; an escaped entity is escaped again */
	CHECK_INT(tlbot_buf_add_html(&b, "caf\xc3\xa9 &amp;", 0), ==, 0);
	CHECK_STR(tlbot_buf_str(&b), "caf\xc3\xa9 &amp;amp;");
	tlbot_buf_reset(&b);
	CHECK_INT(tlbot_buf_add_html(&b, "", 1), ==, 0);
	CHECK_STR(tlbot_buf_str(&b), "");
	tlbot_buf_release(&b);
}

TEST(html_escape_respects_cap)
{
	struct tlbot_buf b;

	/* "a" fits, but "a&lt;" (5 bytes) does not fit in 4: all or nothing */
	tlbot_buf_init(&b, 4);
	CHECK_INT(tlbot_buf_adds(&b, "x"), ==, 0);
	CHECK_INT(tlbot_buf_add_html(&b, "a<", 0), ==, -1);
	CHECK_STR(tlbot_buf_str(&b), "x");
	CHECK_INT(b.len, ==, 1);
	CHECK_INT(tlbot_buf_add_html(&b, "abc", 0), ==, 0);
	CHECK_STR(tlbot_buf_str(&b), "xabc");
	tlbot_buf_release(&b);
}

TEST(detach_hands_over)
{
	struct tlbot_buf b;
	char *s;

	tlbot_buf_init(&b, 64);
	tlbot_buf_adds(&b, "owned");
	s = tlbot_buf_detach(&b);
	CHECK_STR(s, "owned");
	CHECK(b.data == NULL);
	CHECK_INT(b.len, ==, 0);
	CHECK_INT(b.alloc, ==, 0);
	/* the buffer is reusable, with the same cap */
	CHECK_INT(b.max, ==, 64);
	CHECK_INT(tlbot_buf_adds(&b, "again"), ==, 0);
	CHECK_STR(tlbot_buf_str(&b), "again");
	free(s);
	tlbot_buf_release(&b);
	/* release keeps it reusable too */
	CHECK_INT(tlbot_buf_adds(&b, "more"), ==, 0);
	CHECK_STR(tlbot_buf_str(&b), "more");
	tlbot_buf_release(&b);
}

static const struct tap_test tests[] = {
	TEST_ENTRY(empty),
	TEST_ENTRY(append_and_grow),
	TEST_ENTRY(cap_is_enforced),
	TEST_ENTRY(printf),
	TEST_ENTRY(html_escape),
	TEST_ENTRY(html_escape_respects_cap),
	TEST_ENTRY(detach_hands_over),
	TEST_END
};

TAP_MAIN(tests)
