/* tlbot_json_decode (bot/transport/http.c): what any room member can put in a message
 * must not make a /sync batch (or a WebSocket message) unreadable.
 * Regression tests for test_hostile's \u0000 and \ud800 findings. */
#include <string.h>

#include "tap.h"
#include "tlbot/http.h"

static json_t *
dec(const char *text)
{
	json_error_t e;

	return tlbot_json_decode(text, strlen(text), &e);
}

static const char *
body_of(const json_t *j)
{
	return json_string_value(json_object_get(j, "body"));
}

TEST(nul_escape_is_read)
{
	json_t *j = dec("{\"body\":\"!ping\\u0000 extra\"}");

	CHECK(j != NULL);
	CHECK(body_of(j) && strcmp(body_of(j), "!ping") == 0); /* C sees up to the NUL */
	CHECK_INT(json_string_length(json_object_get(j, "body")), ==, 12);
	json_decref(j);
}

TEST(lone_surrogates_become_fffd)
{
	json_t *j = dec("{\"body\":\"a\\ud800b\",\"x\":\"\\udc00\",\"y\":\"\\ud83d\"}");

	CHECK(j != NULL);
	CHECK(body_of(j) && strcmp(body_of(j), "a\xef\xbf\xbd" "b") == 0);
	CHECK(strcmp(json_string_value(json_object_get(j, "x")), "\xef\xbf\xbd") == 0);
	CHECK(strcmp(json_string_value(json_object_get(j, "y")), "\xef\xbf\xbd") == 0);
	json_decref(j);
}

TEST(valid_pairs_and_escaped_backslashes_untouched)
{
	json_t *j = dec("{\"body\":\"\\ud83d\\ude00 \\\\ud800\",\"bad\":\"\\ud800\"}");

	CHECK(j != NULL);
	/* U+1F600, then a literal backslash followed by "ud800" */
	CHECK(body_of(j) && strcmp(body_of(j), "\xf0\x9f\x98\x80 \\ud800") == 0);
	json_decref(j);
}

TEST(invalid_utf8_becomes_fffd)
{
	json_t *j = dec("{\"body\":\"x\xff\xfe\xc3\x28y\",\"ok\":\"\xc3\xa9\"}");

	CHECK(j != NULL);
	CHECK(body_of(j) != NULL && strstr(body_of(j), "\xef\xbf\xbd") != NULL);
	CHECK(strcmp(json_string_value(json_object_get(j, "ok")), "\xc3\xa9") == 0);
	json_decref(j);
	/* overlong and surrogate encodings are invalid UTF-8 too */
	j = dec("{\"body\":\"\xc0\xaf\xed\xa0\x80\"}");
	CHECK(j != NULL);
	json_decref(j);
}

TEST(broken_json_still_refused)
{
	json_error_t e;

	CHECK(dec("{\"body\":\"unterminated") == NULL);
	CHECK(dec("{\"body\":\"\\ud8") == NULL);
	CHECK(tlbot_json_decode("", 0, &e) == NULL);
	CHECK(dec("[1,2,") == NULL);
}

static const struct tap_test tests[] = {
	TEST_ENTRY(nul_escape_is_read),
	TEST_ENTRY(lone_surrogates_become_fffd),
	TEST_ENTRY(valid_pairs_and_escaped_backslashes_untouched),
	TEST_ENTRY(invalid_utf8_becomes_fffd),
	TEST_ENTRY(broken_json_still_refused),
	TEST_END,
};

int
main(int argc, char **argv)
{
	return tap_run(tests, argc, argv);
}
