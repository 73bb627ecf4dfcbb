/* Tests for bot/util/log.c: the JSON line format (one object a line with
 * time, level, module, room, event, message; valid JSON for any message
 * bytes) and redaction of secrets in both formats. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tap.h"
#include "tlbot/log.h"

/* Run fn with stderr sent to a temporary file; return what it wrote
 * (static buffer). */
static const char *
capture(void (*fn)(void))
{
	static char out[16384];
	FILE *f = tmpfile();
	int saved = dup(2);
	size_t n;

	fflush(stderr);
	dup2(fileno(f), 2);
	fn();
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	rewind(f);
	n = fread(out, 1, sizeof(out) - 1, f);
	out[n] = '\0';
	fclose(f);
	return out;
}

static void
lines(void)
{
	log_info("room !abc:example.org event $ev1: command refused: unknown command !x");
	log_warnx("sync: M_UNKNOWN 502; retrying in %d ms", 500);
	log_error("weird \"quotes\" \\ back\tslash \x01 and bad utf8 \xff\xfe and é");
	log_info("room !r:x: invited by @a:x: joining");
	log_info("token syt_secret_token_value sent");
}

TEST(json_lines)
{
	const char *out, *p;
	json_t *o[5];
	json_error_t err;
	int i;

	tlbot_log_add_secret("syt_secret_token_value");
	tlbot_log_set_json(1);
	out = capture(lines);
	tlbot_log_set_json(0);
	p = out;
	for (i = 0; i < 5; i++) {
		const char *nl = strchr(p, '\n');

		CHECK_OR_RETURN(nl != NULL);
		o[i] = json_loadb(p, (size_t)(nl - p), 0, &err);
		if (o[i] == NULL)
			printf("# line %d: %.*s: %s\n", i, (int)(nl - p), p, err.text);
		CHECK_OR_RETURN(json_is_object(o[i]));
		CHECK_INT(json_object_size(o[i]), ==, 6);
		CHECK(json_is_string(json_object_get(o[i], "time")));
		p = nl + 1;
	}
	CHECK_STR(p, "");
	CHECK_STR(json_string_value(json_object_get(o[0], "level")), "info");
	CHECK_STR(json_string_value(json_object_get(o[0], "module")), "router");
	CHECK_STR(json_string_value(json_object_get(o[0], "room")), "!abc:example.org");
	CHECK_STR(json_string_value(json_object_get(o[0], "event")), "$ev1");
	CHECK(strstr(json_string_value(json_object_get(o[0], "message")), "command refused") !=
	      NULL);
	CHECK_STR(json_string_value(json_object_get(o[1], "module")), "sync");
	CHECK(json_is_null(json_object_get(o[1], "room")));
	CHECK(json_is_null(json_object_get(o[1], "event")));
	CHECK_STR(json_string_value(json_object_get(o[2], "level")), "error");
	CHECK(strstr(json_string_value(json_object_get(o[2], "message")), "\"quotes\" \\ back") !=
	      NULL);
	CHECK(strstr(json_string_value(json_object_get(o[2], "message")), "\xef\xbf\xbd") != NULL);
	CHECK(strstr(json_string_value(json_object_get(o[2], "message")), "é") != NULL);
	CHECK_STR(json_string_value(json_object_get(o[3], "room")), "!r:x");
	CHECK_STR(json_string_value(json_object_get(o[4], "message")), "token [redacted] sent");
	CHECK(strstr(out, "syt_secret") == NULL);
	for (i = 0; i < 5; i++)
		json_decref(o[i]);
}

TEST(text_lines)
{
	const char *out = capture(lines);

	CHECK(strstr(out, " info room !abc:example.org event $ev1: command refused") != NULL);
	CHECK(strstr(out, "token [redacted] sent") != NULL);
	CHECK(strstr(out, "syt_secret") == NULL);
	CHECK(out[0] != '{');
}

static const struct tap_test tests[] = {
        TEST_ENTRY(json_lines),
        TEST_ENTRY(text_lines),
        TEST_END,
};
TAP_MAIN(tests)
