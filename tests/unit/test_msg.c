/* Message builder and reply relations: escaping, pills, m.mentions. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cmdtest.h"
#include "tap.h"
#include "tlbot/http.h"
#include "tlbot/msg.h"

TEST(escapes_user_text_and_builds_mentions)
{
	struct tlbot_msg m;
	json_error_t jerr;
	json_t *c;
	char *text;

	tlbot_msg_init(&m);
	tlbot_msg_text(&m, "<script>alert('x')</script> & \"q\"\nline 2");
	tlbot_msg_text(&m, " ");
	tlbot_msg_mention(&m, "@bob:example.org");
	tlbot_msg_mention(&m, "@bob:example.org");
	tlbot_msg_user(&m, "@carol:example.org");
	tlbot_msg_bold(&m, "<b>");
	text = tlbot_msg_content_json(&m, "m.notice");
	tlbot_msg_release(&m);
	CHECK_OR_RETURN(text != NULL);
	c = json_loads(text, 0, &jerr);
	free(text);
	CHECK_OR_RETURN(c != NULL);
	CHECK_STR(json_string_value(json_object_get(c, "msgtype")), "m.notice");
	CHECK_STR(json_string_value(json_object_get(c, "body")),
		  "<script>alert('x')</script> & \"q\"\nline 2 @bob:example.org@bob:example.org@carol:example.org<b>");
	CHECK_CONTAINS(json_string_value(json_object_get(c, "formatted_body")),
		       "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;<br/>line 2");
	CHECK_CONTAINS(json_string_value(json_object_get(c, "formatted_body")),
		       "<a href=\"https://matrix.to/#/@bob:example.org\">@bob:example.org</a>");
	CHECK_CONTAINS(json_string_value(json_object_get(c, "formatted_body")), "<b>&lt;b&gt;</b>");
	CHECK_NOT_CONTAINS(json_string_value(json_object_get(c, "formatted_body")), "<script>");
	/* one mention, deduplicated; carol shown but not notified */
	CHECK_INT((int)json_array_size(json_object_get(json_object_get(c, "m.mentions"), "user_ids")), ==, 1);
	CHECK_STR(json_string_value(json_array_get(json_object_get(json_object_get(c, "m.mentions"), "user_ids"), 0)),
		  "@bob:example.org");
	json_decref(c);
}

TEST(empty_mentions_always_present)
{
	struct tlbot_msg m;
	char *text;

	tlbot_msg_init(&m);
	tlbot_msg_text(&m, "hi");
	text = tlbot_msg_content_json(&m, "m.notice");
	tlbot_msg_release(&m);
	CHECK_CONTAINS(text, "\"m.mentions\":{\"user_ids\":[]}");
	free(text);
}

TEST(overflow_is_an_error_not_a_cut)
{
	struct tlbot_msg m;
	char *big = malloc(TLBOT_MSG_MAX + 10);

	memset(big, 'a', TLBOT_MSG_MAX + 9);
	big[TLBOT_MSG_MAX + 9] = '\0';
	tlbot_msg_init(&m);
	tlbot_msg_text(&m, big);
	CHECK(tlbot_msg_content_json(&m, "m.notice") == NULL);
	tlbot_msg_release(&m);
	free(big);
}

TEST(reply_relation_and_thread)
{
	struct cmdtest t;

	cmdtest_init(&t);
	CHECK_INT(cmdtest_event(&t, "@a:test", "!r:test", "!ping",
				"{\"m.relates_to\":{\"rel_type\":\"m.thread\",\"event_id\":\"$root\","
				"\"is_falling_back\":true,\"m.in_reply_to\":{\"event_id\":\"$root\"}}}",
				NULL, 0), ==, 1);
	CHECK_CONTAINS(t.out_content[0], "\"rel_type\":\"m.thread\"");
	CHECK_CONTAINS(t.out_content[0], "\"event_id\":\"$root\"");
	CHECK_CONTAINS(t.out_content[0], "\"m.in_reply_to\":{\"event_id\":\"$ev1:test\"}");
	CHECK_INT(cmdtest_run(&t, "@a:test", "!r:test", "!ping"), ==, 1);
	CHECK_NOT_CONTAINS(t.out_content[0], "m.thread");
	CHECK_CONTAINS(t.out_content[0], "\"m.in_reply_to\":{\"event_id\":\"$ev2:test\"}");
	/* the txnId is derived from the command: a replay would reuse it */
	CHECK_INT(cmdtest_count(&t, "SELECT COUNT(*) FROM outbox WHERE txn_id = 'tlbot.e.$ev2:test.0'", NULL), ==, 1);
	cmdtest_release(&t);
}

TEST(refusals_are_one_line_and_change_nothing)
{
	struct cmdtest t;

	cmdtest_init(&t);
	CHECK_INT(cmdtest_run(&t, "@a:test", "!r:test", "!ping extra"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "unexpected argument 'extra'");
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "usage: !ping");
	CHECK_INT(cmdtest_run(&t, "@a:test", "!r:test", "!nosuchthing"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "unknown command !nosuchthing");
	CHECK_INT(cmdtest_run(&t, "@a:test", "!r:test", "!hlep"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "did you mean !help");
	CHECK_INT(cmdtest_run(&t, "@a:test", "!r:test", "!help \"x"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "unbalanced quote");
	CHECK(strchr(cmdtest_reply(&t, 0), '\n') == NULL);
	cmdtest_release(&t);
}

TEST(backoff_bounds)
{
	int i;

	for (i = 0; i < 30; i++) {
		long ms = tlbot_backoff_ms(i, 500, 60000);

		CHECK(ms >= 250);
		CHECK(ms <= 60000);
		if (i >= 8)
			CHECK(ms >= 30000); /* at the cap, jitter keeps at least half */
	}
}

TEST(pills_become_ids)
{
	char *b;

	b = tlbot_pills_to_ids("!challenge assign C-1 Kim Lee and Jo",
			       "!challenge assign C-1 <a href=\"https://matrix.to/#/@kim:test\">Kim Lee</a>"
			       " and <a href='https://matrix.to/#/%40jo%3Aexample.org?via=x'>Jo</a>");
	CHECK_STR(b, "!challenge assign C-1 @kim:test and @jo:example.org");
	free(b);
	/* entities in the display name; a non-user link is left alone */
	b = tlbot_pills_to_ids("ask Tom & Jerry about https://gov.uk",
			       "ask <a href=\"https://matrix.to/#/@tj:test\">Tom &amp; Jerry</a> about "
			       "<a href=\"https://gov.uk\">https://gov.uk</a>");
	CHECK_STR(b, "ask @tj:test about https://gov.uk");
	free(b);
	/* a matrix: URI pill reads as a matrix.to one does (one reader, mxuri.c) */
	b = tlbot_pills_to_ids("ping Dave Jones",
			       "ping <a href=\"matrix:u/dave:example.org?action=chat\">Dave Jones</a>");
	CHECK_STR(b, "ping @dave:example.org");
	free(b);
	/* a room permalink is no person */
	CHECK(tlbot_pills_to_ids("see room", "see <a href=\"matrix:r/room:test\">room</a>") == NULL);
	CHECK(tlbot_pills_to_ids("no pills here", "no <b>pills</b> here") == NULL);
	CHECK(tlbot_pills_to_ids("x", NULL) == NULL);
	/* a pill whose text is not in the body (edited elsewhere) changes nothing */
	CHECK(tlbot_pills_to_ids("plain", "<a href=\"https://matrix.to/#/@a:b\">Someone</a>") == NULL);
}

static int
test_namer(void *arg, const char *user_id, char *out, size_t outlen)
{
	(void)arg;
	if (strcmp(user_id, "@erin:test") != 0)
		return -1;
	snprintf(out, outlen, "Erin <Hughes>");
	return 0;
}

TEST(html_without_gaps_names_and_code)
{
	struct tlbot_msg m;
	char *json;

	/* no <br/> after a list or between items; one list, not two */
	tlbot_msg_init(&m);
	tlbot_msg_text(&m, "Head");
	tlbot_msg_br(&m);
	tlbot_msg_html(&m, "<ul><li>");
	tlbot_msg_text(&m, "a");
	tlbot_msg_br(&m);
	tlbot_msg_html(&m, "</li>");
	tlbot_msg_br(&m);
	tlbot_msg_html(&m, "</ul>");
	tlbot_msg_html(&m, "<ul>");
	tlbot_msg_html(&m, "<li>b</li></ul>");
	tlbot_msg_br(&m);
	tlbot_msg_text(&m, "\ntail");
	tlbot_msg_br(&m);
	/* text after a list is a paragraph of its own (closed at the end) */
	CHECK_STR(tlbot_buf_str(&m.html), "Head<ul><li>a</li><li>b</li></ul><p>tail<br/>");
	CHECK_STR(tlbot_buf_str(&m.plain), "Head\na\n\n\n\ntail\n");
	json = tlbot_msg_content_json(&m, "m.notice");
	CHECK(json &&
	      strstr(json, "\"formatted_body\":\"Head<ul><li>a</li><li>b</li></ul><p>tail</p>\""));
	free(json);
	tlbot_msg_release(&m);
	/* a paragraph ends where the next block starts */
	tlbot_msg_init(&m);
	tlbot_msg_html(&m, "<ol><li>x</li></ol>");
	tlbot_msg_code(&m, "!help");
	tlbot_msg_text(&m, " lists all");
	tlbot_msg_html(&m, "<ul><li>y</li></ul>");
	CHECK_STR(tlbot_buf_str(&m.html),
		  "<ol><li>x</li></ol><p><code>!help</code> lists all</p><ul><li>y</li></ul>");
	tlbot_msg_release(&m);
	/* `commands` in <code>, no backticks in the body */
	tlbot_msg_init(&m);
	tlbot_msg_text_code(&m, "try `!exp result E-1 --value N \"finding\"` now, or `x");
	CHECK_STR(tlbot_buf_str(&m.plain), "try !exp result E-1 --value N \"finding\" now, or `x");
	CHECK_STR(tlbot_buf_str(&m.html),
		  "try <code>!exp result E-1 --value N &quot;finding&quot;</code> now, or `x");
	tlbot_msg_release(&m);
	/* people by their display name, escaped; others by id */
	tlbot_msg_set_namer(test_namer, NULL);
	tlbot_msg_init(&m);
	tlbot_msg_user(&m, "@erin:test");
	tlbot_msg_text(&m, " and ");
	tlbot_msg_mention(&m, "@bob:test");
	CHECK_STR(tlbot_buf_str(&m.plain), "Erin <Hughes> and @bob:test");
	CHECK_STR(tlbot_buf_str(&m.html),
		  "<a href=\"https://matrix.to/#/@erin:test\">Erin &lt;Hughes&gt;</a> and "
		  "<a href=\"https://matrix.to/#/@bob:test\">@bob:test</a>");
	tlbot_msg_release(&m);
	tlbot_msg_set_namer(NULL, NULL);
}

static const struct tap_test tests[] = {
	TEST_ENTRY(html_without_gaps_names_and_code),
	TEST_ENTRY(pills_become_ids),
	TEST_ENTRY(escapes_user_text_and_builds_mentions),
	TEST_ENTRY(empty_mentions_always_present),
	TEST_ENTRY(overflow_is_an_error_not_a_cut),
	TEST_ENTRY(reply_relation_and_thread),
	TEST_ENTRY(refusals_are_one_line_and_change_nothing),
	TEST_ENTRY(backoff_bounds),
	TEST_END,
};

TAP_MAIN(tests)
