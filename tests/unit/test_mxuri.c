/* The matrix.to / matrix: URI reader (bot/core/mxuri.c), with the spec's
 * own examples (appendix "URIs": "Matrix URI scheme" and "matrix.to
 * navigation") and the forms older clients write. */
#include <string.h>

#include "../../bot/core/mxuri.h"
#include "tap.h"

static struct tlbot_mxuri u;

static int
rd(const char *s)
{
	return tlbot_mxuri_parse(s, strlen(s), &u);
}

TEST(spec_matrix_scheme_examples)
{
	CHECK_INT(rd("matrix:r/somewhere:example.org"), ==, 0);
	CHECK_INT(u.kind, ==, TLBOT_MXURI_ALIAS);
	CHECK_STR(u.id, "#somewhere:example.org");
	CHECK_STR(u.event_id, "");
	CHECK_INT(u.n_via, ==, 0);

	CHECK_INT(rd("matrix:roomid/somewhere:example.org?via=elsewhere.ca"), ==, 0);
	CHECK_INT(u.kind, ==, TLBOT_MXURI_ROOM);
	CHECK_STR(u.id, "!somewhere:example.org");
	CHECK_INT(u.n_via, ==, 1);
	CHECK_STR(u.via[0], "elsewhere.ca");

	CHECK_INT(rd("matrix:r/somewhere:example.org/e/event"), ==, 0);
	CHECK_INT(u.kind, ==, TLBOT_MXURI_ALIAS);
	CHECK_STR(u.id, "#somewhere:example.org");
	CHECK_STR(u.event_id, "$event");

	CHECK_INT(rd("matrix:roomid/somewhere:example.org/e/event?via=elsewhere.ca"), ==, 0);
	CHECK_INT(u.kind, ==, TLBOT_MXURI_ROOM);
	CHECK_STR(u.id, "!somewhere:example.org");
	CHECK_STR(u.event_id, "$event");
	CHECK_STR(u.via[0], "elsewhere.ca");

	CHECK_INT(rd("matrix:u/alice:example.org?action=chat"), ==, 0);
	CHECK_INT(u.kind, ==, TLBOT_MXURI_USER);
	CHECK_STR(u.id, "@alice:example.org");
	CHECK_INT(u.action, ==, TLBOT_MXURI_ACTION_CHAT);
}

TEST(spec_matrix_to_examples)
{
	CHECK_INT(rd("https://matrix.to/#/%23somewhere%3Aexample.org"), ==, 0);
	CHECK_INT(u.kind, ==, TLBOT_MXURI_ALIAS);
	CHECK_STR(u.id, "#somewhere:example.org");

	CHECK_INT(rd("https://matrix.to/#/!somewhere%3Aexample.org?via=elsewhere.ca"), ==, 0);
	CHECK_INT(u.kind, ==, TLBOT_MXURI_ROOM);
	CHECK_STR(u.id, "!somewhere:example.org");
	CHECK_INT(u.n_via, ==, 1);
	CHECK_STR(u.via[0], "elsewhere.ca");

	CHECK_INT(rd("https://matrix.to/#/%23somewhere:example.org/%24event%3Aexample.org"), ==, 0);
	CHECK_INT(u.kind, ==, TLBOT_MXURI_ALIAS);
	CHECK_STR(u.id, "#somewhere:example.org");
	CHECK_STR(u.event_id, "$event:example.org");

	CHECK_INT(rd("https://matrix.to/#/!somewhere%3Aexample.org/%24event%3Aexample.org"
	             "?via=elsewhere.ca"),
	          ==, 0);
	CHECK_INT(u.kind, ==, TLBOT_MXURI_ROOM);
	CHECK_STR(u.id, "!somewhere:example.org");
	CHECK_STR(u.event_id, "$event:example.org");
	CHECK_STR(u.via[0], "elsewhere.ca");

	CHECK_INT(rd("https://matrix.to/#/%40alice%3Aexample.org"), ==, 0);
	CHECK_INT(u.kind, ==, TLBOT_MXURI_USER);
	CHECK_STR(u.id, "@alice:example.org");
}

TEST(older_clients)
{
	/* unencoded, as Element and older clients write pills */
	CHECK_INT(rd("https://matrix.to/#/@alice:example.org"), ==, 0);
	CHECK_STR(u.id, "@alice:example.org");
	CHECK_INT(rd("https://matrix.to/#/#room:example.org"), ==, 0);
	CHECK_INT(u.kind, ==, TLBOT_MXURI_ALIAS);
	CHECK_INT(rd("https://matrix.to/#/!id:example.org/$ev"), ==, 0);
	CHECK_INT(u.kind, ==, TLBOT_MXURI_ROOM);
	CHECK_STR(u.event_id, "$ev");
	/* lower-case escapes, http, upper-case scheme and host, a port */
	CHECK_INT(rd("http://MATRIX.TO/#/%40alice%3aexample.org"), ==, 0);
	CHECK_STR(u.id, "@alice:example.org");
	CHECK_INT(rd("https://matrix.to/#/@carol:example.org:8448"), ==, 0);
	CHECK_STR(u.id, "@carol:example.org:8448");
	/* a room version 3 event id may decode to one with slashes */
	CHECK_INT(rd("https://matrix.to/#/!r:x/$a/b+c"), ==, 0);
	CHECK_STR(u.event_id, "$a/b+c");
	/* historical localparts may hold '/': a user link has no event part */
	CHECK_INT(rd("https://matrix.to/#/@x=y/z:example.org"), ==, 0);
	CHECK_STR(u.id, "@x=y/z:example.org");
	/* the development-era matrix: types */
	CHECK_INT(rd("matrix:user/alice:example.org"), ==, 0);
	CHECK_STR(u.id, "@alice:example.org");
	CHECK_INT(rd("matrix:room/somewhere:example.org/event/ev"), ==, 0);
	CHECK_STR(u.id, "#somewhere:example.org");
	CHECK_STR(u.event_id, "$ev");
}

TEST(queries_authority_fragment)
{
	CHECK_INT(rd("matrix:roomid/r:x?action=join&via=a.org&via=b.org&org.example.x=1"), ==, 0);
	CHECK_INT(u.action, ==, TLBOT_MXURI_ACTION_JOIN);
	CHECK_INT(u.n_via, ==, 2);
	CHECK_STR(u.via[0], "a.org");
	CHECK_STR(u.via[1], "b.org");
	CHECK_INT(rd("https://matrix.to/#/%40bob%3Aexample.org?via=x&via=y"), ==, 0);
	CHECK_STR(u.id, "@bob:example.org");
	CHECK_INT(u.n_via, ==, 2);
	/* a percent-encoded via; an unknown action is no action */
	CHECK_INT(rd("matrix:u/a:b?via=h%3A8448&action=dance"), ==, 0);
	CHECK_STR(u.via[0], "h:8448");
	CHECK_INT(u.action, ==, TLBOT_MXURI_ACTION_NONE);
	/* at most TLBOT_MXURI_VIA_MAX via servers are kept */
	CHECK_INT(rd("matrix:roomid/r:x?via=1&via=2&via=3&via=4&via=5&via=6&via=7&via=8&via=9"), ==,
	          0);
	CHECK_INT(u.n_via, ==, TLBOT_MXURI_VIA_MAX);
	CHECK_STR(u.via[7], "8");
	/* the reserved authority and fragment are skipped */
	CHECK_INT(rd("matrix://example.org/u/alice:example.org#frag"), ==, 0);
	CHECK_STR(u.id, "@alice:example.org");
	CHECK_INT(rd("matrix:u/alice:example.org?action=chat#x"), ==, 0);
	CHECK_INT(u.action, ==, TLBOT_MXURI_ACTION_CHAT);
	/* only len bytes are read */
	CHECK_INT(tlbot_mxuri_parse("matrix:u/a:b\">A</a>", 12, &u), ==, 0);
	CHECK_STR(u.id, "@a:b");
}

TEST(not_links)
{
	static const char *const bad[] = {
	        "",
	        "https://example.org/#/@x:example.org",
	        "https://matrix.to/",
	        "https://matrix.to/#/",
	        "https://matrix.to/#/alice:example.org",      /* no sigil */
	        "https://matrix.to/#/%2Bgroup%3Aexample.org", /* groups are gone */
	        "https://matrix.to/#/%40bad%00:x",            /* decoded NUL */
	        "https://matrix.to/#/@a b:x",                 /* space */
	        "https://matrix.to/#/@x:y/",                  /* not a user id */
	        "https://matrix.to/#/!r:x/",                  /* empty event */
	        "https://matrix.to/#/!r:x/ev",                /* event without its $ */
	        "https://matrix.to/#/#nocolon",
	        "https://matrix.to/#/!",
	        "matrix:",
	        "matrix:u",
	        "matrix:u/",
	        "matrix:x/alice:example.org",
	        "matrix:e/event",
	        "matrix:u/alice:example.org/e/ev", /* a user has no events */
	        "matrix:r/somewhere:example.org/e/",
	        "matrix:r/somewhere:example.org/x/ev",
	        "matrix:r/somewhere:example.org/e/ev/more",
	        "matrix://authority-only",
	        "matrix:u/@alice:example.org", /* sigil given twice */
	        "mailto:alice@example.org",
	        NULL,
	};
	size_t i;

	for (i = 0; bad[i]; i++) {
		if (rd(bad[i]) == 0)
			printf("#   accepted: %s\n", bad[i]);
		CHECK_INT(rd(bad[i]), ==, -1);
	}
	CHECK_INT(tlbot_mxuri_parse(NULL, 0, &u), ==, -1);
	/* an identifier over the spec's 255 bytes */
	{
		char big[400] = "matrix:roomid/";
		size_t n = strlen(big);

		memset(big + n, 'a', 300);
		big[n + 300] = '\0';
		CHECK_INT(rd(big), ==, -1);
	}
}

static const struct tap_test tests[] = {
        TEST_ENTRY(spec_matrix_scheme_examples),
        TEST_ENTRY(spec_matrix_to_examples),
        TEST_ENTRY(older_clients),
        TEST_ENTRY(queries_authority_fragment),
        TEST_ENTRY(not_links),
        TEST_END,
};

TAP_MAIN(tests)
