/* Tests for bot/core/parse.c: command lines, quoting, flags, mentions, user
 * ids, edit distance and globs. */
#include <string.h>

#include <jansson.h>

#include "tap.h"
#include "tlbot/parse.h"

static const char *const PFX[] = { "!", "/", NULL };

/* Parse body and compare with the expected name and tokens (NULL-ended).
 * Returns 1 when everything matches, printing the difference otherwise. */
static int
toks_(const char *body, const char *name, const char *const *want, const char *file, int line)
{
	struct tlbot_cmdline cl;
	char err[256];
	int rc = tlbot_cmdline_parse(body, PFX, &cl, err, sizeof(err)), ok = 1;
	size_t i, n = 0;

	while (want[n])
		n++;
	if (rc != 1) {
		printf("#   %s:%d: parse(\"%s\") = %d (%s)\n", file, line, body, rc, err);
		return 0;
	}
	if (strcmp(cl.name, name) != 0) {
		printf("#   %s:%d: name \"%s\", want \"%s\"\n", file, line, cl.name, name);
		ok = 0;
	}
	if (cl.ntok != n) {
		printf("#   %s:%d: %zu tokens, want %zu\n", file, line, cl.ntok, n);
		ok = 0;
	}
	for (i = 0; i < n && i < cl.ntok; i++) {
		if (strcmp(cl.tok[i].text, want[i]) != 0) {
			printf("#   %s:%d: token %zu \"%s\", want \"%s\"\n", file, line, i,
			       cl.tok[i].text, want[i]);
			ok = 0;
		}
	}
	tlbot_cmdline_release(&cl);
	return ok;
}

#define TOKS(body, name, ...) \
	CHECK(toks_(body, name, (const char *const[]){ __VA_ARGS__, NULL }, __FILE__, __LINE__))
#define TOKS0(body, name) \
	CHECK(toks_(body, name, (const char *const[]){ NULL }, __FILE__, __LINE__))

/* Parse body expecting -1; returns the error message (static). */
static const char *
parse_err(const char *body)
{
	static char err[256];
	struct tlbot_cmdline cl;
	int rc;

	rc = tlbot_cmdline_parse(body, PFX, &cl, err, sizeof(err));
	if (rc != -1) {
		if (rc == 1)
			tlbot_cmdline_release(&cl);
		return "(parse did not fail)";
	}
	/* out is empty after a failure */
	if (cl.name != NULL || cl.ntok != 0)
		return "(out not empty after failure)";
	return err;
}

static int
not_command(const char *body)
{
	struct tlbot_cmdline cl;
	char err[128];
	int rc = tlbot_cmdline_parse(body, PFX, &cl, err, sizeof(err));

	if (rc == 1)
		tlbot_cmdline_release(&cl);
	return rc == 0 && cl.name == NULL && cl.ntok == 0;
}

TEST(simple_command)
{
	struct tlbot_cmdline cl;
	char err[128];

	CHECK_INT(tlbot_cmdline_parse("!ping", PFX, &cl, err, sizeof(err)), ==, 1);
	CHECK_STR(cl.prefix, "!");
	CHECK_STR(cl.name, "ping");
	CHECK_INT(cl.ntok, ==, 0);
	tlbot_cmdline_release(&cl);
	CHECK(cl.name == NULL);

	CHECK_INT(tlbot_cmdline_parse("/challenge add x", PFX, &cl, err, sizeof(err)), ==, 1);
	CHECK_STR(cl.prefix, "/");
	CHECK_STR(cl.name, "challenge");
	tlbot_cmdline_release(&cl);

	TOKS("!challenge add cut-costs", "challenge", "add", "cut-costs");
	TOKS("!ping   ", "ping", NULL);
	TOKS("!a  b\tc\nd", "a", "b", "c", "d");
}

TEST(family_lowercased)
{
	/* phones capitalise the first letter */
	TOKS("!Ping", "ping", NULL);
	TOKS("!STANDUP Yesterday", "standup", "Yesterday");
	/* only ASCII is folded; the rest stays as typed */
	TOKS("!A\xc3\x89Z", "a\xc3\x89z", NULL);
	/* a family must start with an ASCII letter */
	CHECK(not_command("!\xc3\x89" "a"));
}

TEST(not_commands)
{
	CHECK(not_command(""));
	CHECK(not_command("hello"));
	CHECK(not_command("! ping"));
	CHECK(not_command("!"));
	CHECK(not_command("/"));
	CHECK(not_command("//x"));
	CHECK(not_command("!!"));
	CHECK(not_command("!!ping"));
	CHECK(not_command("!1"));
	CHECK(not_command("!\"x\""));
	CHECK(not_command("> !ping"));
	CHECK(not_command("> <@alice:example.org> !ping\n\nthanks"));
	CHECK(not_command(" !ping"));
	CHECK(not_command("ping!"));
	CHECK(not_command("?ping"));
	CHECK(not_command(NULL));
	/* a non-command is not validated: long or odd text is just chat */
	CHECK(not_command("plain text with an unbalanced \" quote"));
	CHECK(not_command("text \x01 with control"));
}

TEST(custom_prefixes)
{
	static const char *const p[] = { "tl!", "t", ">", NULL };
	static const char *const longest[] = { "!", "!!", NULL };
	static const char *const toolong[] = { "123456789", NULL };
	struct tlbot_cmdline cl;
	char err[128];

	CHECK_INT(tlbot_cmdline_parse("tl!ping x", p, &cl, err, sizeof(err)), ==, 1);
	CHECK_STR(cl.prefix, "tl!");
	CHECK_STR(cl.name, "ping");
	CHECK_INT(cl.ntok, ==, 1);
	tlbot_cmdline_release(&cl);
	/* "t" matches too, but "tl!" is longer and wins */
	CHECK_INT(tlbot_cmdline_parse("tping", p, &cl, err, sizeof(err)), ==, 1);
	CHECK_STR(cl.name, "ping");
	tlbot_cmdline_release(&cl);
	/* a quote prefix still needs a letter: "> text" is a quote */
	CHECK_INT(tlbot_cmdline_parse("> ping", p, &cl, err, sizeof(err)), ==, 0);
	CHECK_INT(tlbot_cmdline_parse(">ping", p, &cl, err, sizeof(err)), ==, 1);
	tlbot_cmdline_release(&cl);
	CHECK_INT(tlbot_cmdline_parse("!ping", p, &cl, err, sizeof(err)), ==, 0);
	CHECK_INT(tlbot_cmdline_parse("!!ping", longest, &cl, err, sizeof(err)), ==, 1);
	CHECK_STR(cl.prefix, "!!");
	tlbot_cmdline_release(&cl);
	/* a prefix that does not fit cl.prefix is ignored, never overflows */
	CHECK_INT(tlbot_cmdline_parse("123456789x", toolong, &cl, err, sizeof(err)), ==, 0);
	/* NULL prefixes means the defaults */
	CHECK_INT(tlbot_cmdline_parse("/ping", NULL, &cl, err, sizeof(err)), ==, 1);
	tlbot_cmdline_release(&cl);
}

TEST(double_quotes)
{
	TOKS("!challenge add \"cut costs\" now", "challenge", "add", "cut costs", "now");
	TOKS("!x \"\"", "x", "");
	TOKS("!x \"a \\\"b\\\" c\"", "x", "a \"b\" c");
	TOKS("!x \"back\\\\slash\"", "x", "back\\slash");
	/* other backslashes stay as typed */
	TOKS("!x \"C:\\path\\n\"", "x", "C:\\path\\n");
	TOKS("!x a\\b", "x", "a\\b");
	/* outside quotes \" is a literal quote */
	TOKS("!say \\\"hi\\\"", "say", "\"hi\"");
	/* a single quote inside double quotes is literal */
	TOKS("!x \"it's 'fine'\"", "x", "it's 'fine'");
}

TEST(single_quotes)
{
	TOKS("!x 'a b' c", "x", "a b", "c");
	TOKS("!x 'no \\escapes'", "x", "no \\escapes");
	TOKS("!x 'say \"hi\"'", "x", "say \"hi\"");
	/* apostrophes inside words are not quotes */
	TOKS("!standup it's done, team's report", "standup", "it's", "done,", "team's", "report");
	TOKS("!x 'it's fine'", "x", "it's fine");
	TOKS("!x rock'n'roll", "x", "rock'n'roll");
	TOKS("!x --note='a b'", "x", "--note=a b");
}

TEST(typographic_quotes)
{
	/* what iOS and Element's smart punctuation send */
	TOKS("!challenge add \xe2\x80\x9c" "cut costs\xe2\x80\x9d", "challenge", "add", "cut costs");
	TOKS("!x \xe2\x80\x98" "a b\xe2\x80\x99 c", "x", "a b", "c");
	/* a closing quote typed after '=' opens too */
	TOKS("!x --note=\xe2\x80\x9d" "a b\xe2\x80\x9d", "x", "--note=a b");
	/* German low-high quotes */
	TOKS("!x \xe2\x80\x9e" "a b\xe2\x80\x9c", "x", "a b");
	/* the typographic apostrophe inside words */
	TOKS("!x don\xe2\x80\x99t stop", "x", "don\xe2\x80\x99t", "stop");
	TOKS("!x \xe2\x80\x98" "don\xe2\x80\x99t stop\xe2\x80\x99", "x", "don\xe2\x80\x99t stop");
	/* typographic quotes inside ASCII quotes are text */
	TOKS("!x \"she said \xe2\x80\x9chi\xe2\x80\x9d\"", "x",
	     "she said \xe2\x80\x9chi\xe2\x80\x9d");
	TOKS("!x \xe2\x80\x9c" "a \\\xe2\x80\x9d b\xe2\x80\x9d", "x", "a \xe2\x80\x9d b");
	CHECK_STR(parse_err("!x \xe2\x80\x9c" "open"), "unbalanced quote: \xe2\x80\x9c" "open");
}

TEST(adjacent_parts_join)
{
	TOKS("!x --note=\"a b\" y", "x", "--note=a b", "y");
	TOKS("!x a\"b c\"d", "x", "ab cd");
	TOKS("!x \"a\"'b c'", "x", "ab c");
	TOKS("!x \"a\"\"b\"", "x", "ab");
}

TEST(quoted_and_bare_flags)
{
	struct tlbot_cmdline cl;
	char err[128];

	CHECK_INT(tlbot_cmdline_parse("!x plain \"q\" --note=\"a b\" \"--x\" \"\"", PFX, &cl, err,
				      sizeof(err)), ==, 1);
	CHECK_INT(cl.ntok, ==, 5);
	CHECK_INT(cl.tok[0].quoted, ==, 0);
	CHECK_INT(cl.tok[0].bare, ==, 5);
	CHECK_INT(cl.tok[1].quoted, ==, 1);
	CHECK_INT(cl.tok[1].bare, ==, 0);
	CHECK_INT(cl.tok[2].quoted, ==, 1);
	CHECK_INT(cl.tok[2].bare, ==, 7);
	CHECK_STR(cl.tok[3].text, "--x");
	CHECK_INT(cl.tok[3].bare, ==, 0);
	CHECK_STR(cl.tok[4].text, "");
	CHECK_INT(cl.tok[4].quoted, ==, 1);
	tlbot_cmdline_release(&cl);
}

TEST(unicode_and_newlines)
{
	TOKS("!note add caf\xc3\xa9 \xf0\x9f\x8e\x89 \xe6\x97\xa5\xe6\x9c\xac", "note", "add",
	     "caf\xc3\xa9", "\xf0\x9f\x8e\x89", "\xe6\x97\xa5\xe6\x9c\xac");
	/* multi-line notes keep their newlines inside quotes */
	TOKS("!note add \"line one\nline two\"", "note", "add", "line one\nline two");
	TOKS("!note add 'a\n\tb'", "note", "add", "a\n\tb");
	/* no-break and other Unicode spaces separate tokens */
	TOKS("!x a\xc2\xa0" "b\xe2\x80\x89" "c\xe3\x80\x80" "d", "x", "a", "b", "c", "d");
	TOKS("!x\xc2\xa0" "a", "x", "a");
	/* but are kept inside quotes */
	TOKS("!x \"a\xc2\xa0" "b\"", "x", "a\xc2\xa0" "b");
	/* zero-width joiners etc. are text */
	TOKS("!x a\xe2\x80\x8d" "b", "x", "a\xe2\x80\x8d" "b");
}

TEST(unbalanced_quotes)
{
	CHECK_STR(parse_err("!challenge add \"cut costs"), "unbalanced quote: \"cut costs");
	CHECK_STR(parse_err("!x 'open"), "unbalanced quote: 'open");
	CHECK_STR(parse_err("!x a\"b"), "unbalanced quote: \"b");
	/* the snippet is one line and short */
	CHECK_STR(parse_err("!x \"first\nsecond"), "unbalanced quote: \"first second");
	CHECK_STR(parse_err("!x \"0123456789012345678901234567890123456789"),
		  "unbalanced quote: \"0123456789012345678901234567890...");
	/* an escaped quote does not close */
	CHECK_STR(parse_err("!x \"a\\\""), "unbalanced quote: \"a\\\"");
	/* a snippet never cuts a character in half */
	CHECK_STR(parse_err("!x \"0123456789012345678901234567890\xc3\xa9xyz"),
		  "unbalanced quote: \"0123456789012345678901234567890...");
	/* an apostrophe-like quote followed by a letter never closes */
	CHECK_STR(parse_err("!x 'a b'c"), "unbalanced quote: 'a b'c");
}

TEST(invalid_text)
{
	CHECK_STR(parse_err("!x \xff"), "invalid utf-8 at byte 3");
	CHECK_STR(parse_err("!x \xc3"), "invalid utf-8 at byte 3");
	CHECK_STR(parse_err("!x \xc0\xaf"), "invalid utf-8 at byte 3");       /* overlong */
	CHECK_STR(parse_err("!x \xed\xa0\x80"), "invalid utf-8 at byte 3");   /* surrogate */
	CHECK_STR(parse_err("!x \xf4\x90\x80\x80"), "invalid utf-8 at byte 3"); /* > U+10FFFF */
	CHECK_STR(parse_err("!x a\x01"), "control character U+0001 at byte 4");
	/* CR from clients that send CRLF line ends is whitespace, not an error */
	TOKS("!x a\r\nb", "x", "a", "b");
	CHECK_STR(parse_err("!x \x1b[31m"), "control character U+001B at byte 3");
	CHECK_STR(parse_err("!x \x7f"), "control character U+007F at byte 3");
	CHECK_STR(parse_err("!x \xc2\x85"), "control character U+0085 at byte 3");
	/* control characters inside quotes are refused as well */
	CHECK_STR(parse_err("!x \"\x07\""), "control character U+0007 at byte 4");
}

TEST(limits)
{
	static char body[TLBOT_PARSE_MAX_BODY + 16];
	struct tlbot_cmdline cl;
	char err[128];
	size_t i;

	/* exactly the limit is fine */
	memset(body, 'a', TLBOT_PARSE_MAX_BODY);
	body[0] = '!';
	body[TLBOT_PARSE_MAX_BODY] = '\0';
	CHECK_INT(tlbot_cmdline_parse(body, PFX, &cl, err, sizeof(err)), ==, 1);
	CHECK_INT(strlen(cl.name), ==, TLBOT_PARSE_MAX_BODY - 1);
	tlbot_cmdline_release(&cl);
	body[TLBOT_PARSE_MAX_BODY] = 'a';
	body[TLBOT_PARSE_MAX_BODY + 1] = '\0';
	CHECK_STR(parse_err(body), "command too long: 8193 bytes (max 8192)");

	/* 64 arguments fit, 65 do not */
	memcpy(body, "!x", 2);
	for (i = 0; i < TLBOT_PARSE_MAX_TOKENS; i++)
		memcpy(body + 2 + 2 * i, " a", 2);
	i = 2 + 2 * TLBOT_PARSE_MAX_TOKENS;
	body[i] = '\0';
	CHECK_INT(tlbot_cmdline_parse(body, PFX, &cl, err, sizeof(err)), ==, 1);
	CHECK_INT(cl.ntok, ==, TLBOT_PARSE_MAX_TOKENS);
	tlbot_cmdline_release(&cl);
	memcpy(body + i, " b", 3);
	CHECK_STR(parse_err(body), "too many arguments (max 64)");
	/* trailing spaces after the 64th are fine */
	memcpy(body + i, "   ", 4);
	CHECK_INT(tlbot_cmdline_parse(body, PFX, &cl, err, sizeof(err)), ==, 1);
	tlbot_cmdline_release(&cl);
}

TEST(error_buffer_edge_cases)
{
	struct tlbot_cmdline cl;
	char tiny[8];

	/* NULL or tiny error buffers are fine */
	CHECK_INT(tlbot_cmdline_parse("!x \"open", PFX, &cl, NULL, 0), ==, -1);
	CHECK_INT(tlbot_cmdline_parse("!x \"open quote here", PFX, &cl, tiny, sizeof(tiny)), ==, -1);
	CHECK_STR(tiny, "unbalan");
	/* release twice is harmless */
	CHECK_INT(tlbot_cmdline_parse("!x a b", PFX, &cl, NULL, 0), ==, 1);
	tlbot_cmdline_release(&cl);
	tlbot_cmdline_release(&cl);
	tlbot_cmdline_release(NULL);
}

/* ------------------------------------------------------------------ flags */

static const char *const SPEC[] = { "mine", "region=", "assignee=*", "note=", NULL };

/* Parse body and bind from token first; returns bind's rc, err filled. */
static int
bind(const char *body, size_t first, const char *const *spec, struct tlbot_cmdline *cl,
     struct tlbot_args *a, char *err, size_t errlen)
{
	if (tlbot_cmdline_parse(body, PFX, cl, err, errlen) != 1)
		return -2;
	return tlbot_args_bind(cl, first, spec, a, err, errlen);
}

TEST(flags_forms)
{
	struct tlbot_cmdline cl;
	struct tlbot_args a;
	char err[256];

	CHECK_INT(bind("!challenge list --mine --region north extra --assignee=@a:x "
		       "--assignee @b:x --note=\"cut costs\"", 1, SPEC, &cl, &a, err, sizeof(err)),
		  ==, 0);
	CHECK_INT(a.argc, ==, 1);
	CHECK_STR(a.argv[0], "extra");
	CHECK_INT(a.nflags, ==, 5);
	CHECK(tlbot_args_has(&a, "mine"));
	CHECK(tlbot_args_get(&a, "mine") == NULL);
	CHECK_STR(tlbot_args_get(&a, "region"), "north");
	CHECK_STR(tlbot_args_get(&a, "--region"), "north");
	CHECK_STR(tlbot_args_get(&a, "assignee"), "@b:x"); /* the last one */
	CHECK_STR(a.flags[2].value, "@a:x");
	CHECK_STR(tlbot_args_get(&a, "note"), "cut costs");
	CHECK(!tlbot_args_has(&a, "other"));
	CHECK(!tlbot_args_has(&a, "min"));
	CHECK(tlbot_args_get(&a, "other") == NULL);
	tlbot_cmdline_release(&cl);

	/* first skips the subcommand; tokens before it are not bound */
	CHECK_INT(bind("!x --mine a", 0, SPEC, &cl, &a, err, sizeof(err)), ==, 0);
	CHECK_INT(a.argc, ==, 1);
	CHECK(tlbot_args_has(&a, "mine"));
	tlbot_cmdline_release(&cl);
	CHECK_INT(bind("!x a b", 5, SPEC, &cl, &a, err, sizeof(err)), ==, 0);
	CHECK_INT(a.argc, ==, 0);
	tlbot_cmdline_release(&cl);
}

TEST(flags_values)
{
	struct tlbot_cmdline cl;
	struct tlbot_args a;
	char err[256];

	/* a value may be quoted, and may look like a flag when quoted */
	CHECK_INT(bind("!x --region \"--north\"", 0, SPEC, &cl, &a, err, sizeof(err)), ==, 0);
	CHECK_STR(tlbot_args_get(&a, "region"), "--north");
	tlbot_cmdline_release(&cl);
	/* negative numbers are values and positionals, not flags */
	CHECK_INT(bind("!x --region -5 -3", 0, SPEC, &cl, &a, err, sizeof(err)), ==, 0);
	CHECK_STR(tlbot_args_get(&a, "region"), "-5");
	CHECK_INT(a.argc, ==, 1);
	CHECK_STR(a.argv[0], "-3");
	tlbot_cmdline_release(&cl);
	/* an explicitly empty value */
	CHECK_INT(bind("!x --region=\"\"", 0, SPEC, &cl, &a, err, sizeof(err)), ==, 0);
	CHECK_STR(tlbot_args_get(&a, "region"), "");
	tlbot_cmdline_release(&cl);
	CHECK_INT(bind("!x --region \"\"", 0, SPEC, &cl, &a, err, sizeof(err)), ==, 0);
	CHECK_STR(tlbot_args_get(&a, "region"), "");
	tlbot_cmdline_release(&cl);
	/* value with '=' in it */
	CHECK_INT(bind("!x --note=a=b", 0, SPEC, &cl, &a, err, sizeof(err)), ==, 0);
	CHECK_STR(tlbot_args_get(&a, "note"), "a=b");
	tlbot_cmdline_release(&cl);
	/* multi-line quoted value */
	CHECK_INT(bind("!x --note \"one\ntwo\"", 0, SPEC, &cl, &a, err, sizeof(err)), ==, 0);
	CHECK_STR(tlbot_args_get(&a, "note"), "one\ntwo");
	tlbot_cmdline_release(&cl);
}

TEST(flags_end_marker_and_quoted)
{
	struct tlbot_cmdline cl;
	struct tlbot_args a;
	char err[256];

	CHECK_INT(bind("!x a -- --mine --bogus", 0, SPEC, &cl, &a, err, sizeof(err)), ==, 0);
	CHECK_INT(a.argc, ==, 3);
	CHECK_STR(a.argv[1], "--mine");
	CHECK_STR(a.argv[2], "--bogus");
	CHECK_INT(a.nflags, ==, 0);
	tlbot_cmdline_release(&cl);
	/* a quoted "--x" is positional */
	CHECK_INT(bind("!x \"--bogus\" '--mine' \"--\"", 0, SPEC, &cl, &a, err, sizeof(err)), ==, 0);
	CHECK_INT(a.argc, ==, 3);
	CHECK_STR(a.argv[2], "--");
	CHECK_INT(a.nflags, ==, 0);
	tlbot_cmdline_release(&cl);
	/* a second "--" after the marker is positional */
	CHECK_INT(bind("!x -- --", 0, SPEC, &cl, &a, err, sizeof(err)), ==, 0);
	CHECK_INT(a.argc, ==, 1);
	tlbot_cmdline_release(&cl);
}

TEST(flags_em_dash)
{
	struct tlbot_cmdline cl;
	struct tlbot_args a;
	char err[256];

	/* iOS smart punctuation turns "--" into an em dash */
	CHECK_INT(bind("!x \xe2\x80\x94mine \xe2\x80\x94region=north", 0, SPEC, &cl, &a, err,
		       sizeof(err)), ==, 0);
	CHECK(tlbot_args_has(&a, "mine"));
	CHECK_STR(tlbot_args_get(&a, "region"), "north");
	tlbot_cmdline_release(&cl);
	/* en dash too; a lone dash or a dash before a digit is text */
	CHECK_INT(bind("!x \xe2\x80\x93mine \xe2\x80\x94 \xe2\x80\x94" "5", 0, SPEC, &cl, &a, err,
		       sizeof(err)), ==, 0);
	CHECK(tlbot_args_has(&a, "mine"));
	CHECK_INT(a.argc, ==, 2);
	tlbot_cmdline_release(&cl);
}

TEST(flags_errors)
{
	struct tlbot_cmdline cl;
	struct tlbot_args a;
	char err[256];

	CHECK_INT(bind("!x --region", 0, SPEC, &cl, &a, err, sizeof(err)), ==, -1);
	CHECK_STR(err, "--region needs a value");
	CHECK_INT(a.nflags, ==, 0);
	tlbot_cmdline_release(&cl);
	CHECK_INT(bind("!x --region --mine", 0, SPEC, &cl, &a, err, sizeof(err)), ==, -1);
	CHECK_STR(err, "--region needs a value");
	tlbot_cmdline_release(&cl);
	CHECK_INT(bind("!x --region --", 0, SPEC, &cl, &a, err, sizeof(err)), ==, -1);
	CHECK_STR(err, "--region needs a value");
	tlbot_cmdline_release(&cl);
	CHECK_INT(bind("!x --region=", 0, SPEC, &cl, &a, err, sizeof(err)), ==, -1);
	CHECK_STR(err, "--region needs a value");
	tlbot_cmdline_release(&cl);

	CHECK_INT(bind("!x --foo", 0, SPEC, &cl, &a, err, sizeof(err)), ==, -1);
	CHECK_STR(err, "unknown flag --foo (accepted: --mine, --region, --assignee, --note)");
	tlbot_cmdline_release(&cl);
	CHECK_INT(bind("!x --regoin=n", 0, SPEC, &cl, &a, err, sizeof(err)), ==, -1);
	CHECK_STR(err, "unknown flag --regoin, did you mean --region? "
		       "(accepted: --mine, --region, --assignee, --note)");
	tlbot_cmdline_release(&cl);
	CHECK_INT(bind("!x --foo", 0, NULL, &cl, &a, err, sizeof(err)), ==, -1);
	CHECK_STR(err, "unknown flag --foo (this command takes no flags)");
	tlbot_cmdline_release(&cl);
	/* flags are case-sensitive */
	CHECK_INT(bind("!x --Mine", 0, SPEC, &cl, &a, err, sizeof(err)), ==, -1);
	CHECK_CONTAINS(err, "unknown flag --Mine");
	tlbot_cmdline_release(&cl);
	/* a strange flag name is echoed on one safe line */
	CHECK_INT(bind("!x --\"a\nb\"", 0, SPEC, &cl, &a, err, sizeof(err)), ==, -1);
	CHECK_CONTAINS(err, "unknown flag --a?b (");
	tlbot_cmdline_release(&cl);

	CHECK_INT(bind("!x --mine=yes", 0, SPEC, &cl, &a, err, sizeof(err)), ==, -1);
	CHECK_STR(err, "--mine does not take a value");
	tlbot_cmdline_release(&cl);
	CHECK_INT(bind("!x --mine --mine", 0, SPEC, &cl, &a, err, sizeof(err)), ==, -1);
	CHECK_STR(err, "--mine given twice");
	tlbot_cmdline_release(&cl);
	CHECK_INT(bind("!x --region a --region=b", 0, SPEC, &cl, &a, err, sizeof(err)), ==, -1);
	CHECK_STR(err, "--region given twice");
	tlbot_cmdline_release(&cl);
	/* repeatable flags may repeat */
	CHECK_INT(bind("!x --assignee a --assignee b --assignee c", 0, SPEC, &cl, &a, err,
		       sizeof(err)), ==, 0);
	CHECK_INT(a.nflags, ==, 3);
	tlbot_cmdline_release(&cl);
}

/* --------------------------------------------------------------- mentions */

struct got {
	char ids[16][256];
	size_t n;
};

static void
collect(const char *id, void *arg)
{
	struct got *g = arg;

	if (g->n < 16)
		snprintf(g->ids[g->n++], sizeof(g->ids[0]), "%s", id);
}

static size_t
mentions(struct got *g, const char *body, const char *html, const json_t *ids)
{
	memset(g, 0, sizeof(*g));
	return tlbot_mentions_collect(body, html, ids, collect, g);
}

TEST(mentions_json)
{
	struct got g;
	json_t *ids = json_pack("[s,i,s,n,s,s]", "@alice:example.org", 5, "@bob:example.org",
				"not an id", "@alice:example.org");

	CHECK_OR_RETURN(ids != NULL);
	CHECK_INT(mentions(&g, NULL, NULL, ids), ==, 2);
	CHECK_INT(g.n, ==, 2);
	CHECK_STR(g.ids[0], "@alice:example.org");
	CHECK_STR(g.ids[1], "@bob:example.org");
	json_decref(ids);

	/* not an array: ignored */
	ids = json_string("@alice:example.org");
	CHECK_INT(mentions(&g, NULL, NULL, ids), ==, 0);
	json_decref(ids);
	ids = json_object();
	CHECK_INT(mentions(&g, NULL, NULL, ids), ==, 0);
	json_decref(ids);
	CHECK_INT(mentions(&g, NULL, NULL, NULL), ==, 0);
	/* a callback is optional */
	CHECK_INT(tlbot_mentions_collect("hi @a:b.c", NULL, NULL, NULL, NULL), ==, 1);
}

TEST(mentions_pills)
{
	struct got g;

	CHECK_INT(mentions(&g, "Alice: hi", "<a href=\"https://matrix.to/#/@alice:example.org\">"
				  "Alice</a>: hi", NULL), ==, 1);
	CHECK_STR(g.ids[0], "@alice:example.org");
	/* percent-encoded, with a query, single quotes, upper-case HREF */
	CHECK_INT(mentions(&g, NULL,
			   "<a href='https://matrix.to/#/%40bob%3Aexample.org?via=x&amp;via=y'>B</a>"
			   " <A HREF=\"https://matrix.to/#/@carol:example.org:8448\">C</A>"
			   " <a href = \"https://matrix.to/#/%40alice%3aexample.org\">A</a>",
			   NULL), ==, 3);
	CHECK_STR(g.ids[0], "@bob:example.org");
	CHECK_STR(g.ids[1], "@carol:example.org:8448");
	CHECK_STR(g.ids[2], "@alice:example.org");
	/* matrix: URIs */
	CHECK_INT(mentions(&g, NULL, "<a href=\"matrix:u/dave:example.org?action=chat\">D</a>",
			   NULL), ==, 1);
	CHECK_STR(g.ids[0], "@dave:example.org");
	/* room and event links, other sites and broken links are not people */
	CHECK_INT(mentions(&g, NULL,
			   "<a href=\"https://matrix.to/#/#room:example.org\">r</a>"
			   "<a href=\"https://matrix.to/#/!id:example.org/$ev\">e</a>"
			   "<a href=\"https://example.org/#/@x:example.org\">x</a>"
			   "<a href=\"https://matrix.to/#/%40bad%00:x\">n</a>"
			   "<a href=\"https://matrix.to/#/@a b:x\">s</a>"
			   "<a href=\"https://matrix.to/#/@x:y/\">s</a>"
			   "<a href=", NULL), ==, 0);
	/* an unterminated attribute runs to the end of the text */
	CHECK_INT(mentions(&g, NULL, "<a href=\"https://matrix.to/#/@cut:x", NULL), ==, 1);
	CHECK_STR(g.ids[0], "@cut:x");
	/* the reply fallback quotes the replied-to sender: not a mention */
	CHECK_INT(mentions(&g, "> <@alice:example.org> hello\n\n!assign @bob:example.org",
			   "<mx-reply><blockquote><a href=\"https://matrix.to/#/@alice:example.org\">"
			   "In reply to</a></blockquote></mx-reply>!assign "
			   "<a href=\"https://matrix.to/#/@bob:example.org\">Bob</a>",
			   NULL), ==, 1);
	CHECK_STR(g.ids[0], "@bob:example.org");
	/* unterminated mx-reply: nothing after it is trusted */
	CHECK_INT(mentions(&g, NULL, "<mx-reply><a href=\"https://matrix.to/#/@a:b.c\">", NULL),
		  ==, 0);
}

TEST(mentions_plain)
{
	struct got g;

	CHECK_INT(mentions(&g, "ping @alice:example.org, @bob:example.org. and "
			       "(@carol:example.org) @dave:example.org:8448! @eve:example.org?",
			   NULL, NULL), ==, 5);
	CHECK_STR(g.ids[0], "@alice:example.org");
	CHECK_STR(g.ids[1], "@bob:example.org");
	CHECK_STR(g.ids[2], "@carol:example.org");
	CHECK_STR(g.ids[3], "@dave:example.org:8448");
	CHECK_STR(g.ids[4], "@eve:example.org");
	CHECK_INT(mentions(&g, "@frank:example.org; @gina:example.org: "
			       "@Historic_Upper:example.org @x=y/z+w-v.u:[::1]:8008",
			   NULL, NULL), ==, 4);
	CHECK_STR(g.ids[0], "@frank:example.org");
	CHECK_STR(g.ids[1], "@gina:example.org");
	CHECK_STR(g.ids[2], "@Historic_Upper:example.org");
	CHECK_STR(g.ids[3], "@x=y/z+w-v.u:[::1]:8008");
	/* e-mail addresses, bare @names and lone @ are not ids */
	CHECK_INT(mentions(&g, "mail bob@example.org or @bob or @ or @:x or @a: end", NULL, NULL),
		  ==, 0);
	/* the reply fallback lines are skipped */
	CHECK_INT(mentions(&g, "> <@alice:example.org> old\n> more\n\nnew @bob:example.org",
			   NULL, NULL), ==, 1);
	CHECK_STR(g.ids[0], "@bob:example.org");
}

TEST(mentions_order_and_dedupe)
{
	struct got g;
	json_t *ids = json_pack("[s]", "@zed:example.org");

	CHECK_OR_RETURN(ids != NULL);
	CHECK_INT(mentions(&g, "@bob:example.org and @zed:example.org and @bob:example.org",
			   "<a href=\"https://matrix.to/#/@amy:example.org\">Amy</a>"
			   "<a href=\"https://matrix.to/#/%40zed%3Aexample.org\">Zed</a>",
			   ids), ==, 3);
	CHECK_STR(g.ids[0], "@zed:example.org");
	CHECK_STR(g.ids[1], "@amy:example.org");
	CHECK_STR(g.ids[2], "@bob:example.org");
	json_decref(ids);
}

TEST(mentions_bounded)
{
	static char body[400 * 16];
	struct got g;
	size_t i, n = 0;

	for (i = 0; i < 400; i++)
		n += (size_t)snprintf(body + n, sizeof(body) - n, "@u%zu:x.org ", i);
	/* at most 256 distinct ids are reported from one message */
	CHECK_INT(mentions(&g, body, NULL, NULL), ==, 256);
}

/* --------------------------------------------------------------- user ids */

TEST(user_ids)
{
	char longid[300];

	CHECK(tlbot_is_user_id("@alice:example.org"));
	CHECK(tlbot_is_user_id("@a:b"));
	CHECK(tlbot_is_user_id("@a.b_c=d-e/f+g:example.org"));
	CHECK(tlbot_is_user_id("@Alice:example.org")); /* historical upper case */
	CHECK(tlbot_is_user_id("@alice:example.org:8448"));
	CHECK(tlbot_is_user_id("@alice:1.2.3.4"));
	CHECK(tlbot_is_user_id("@alice:[::1]"));
	CHECK(tlbot_is_user_id("@alice:[2001:db8::1]:443"));
	CHECK(!tlbot_is_user_id(NULL));
	CHECK(!tlbot_is_user_id(""));
	CHECK(!tlbot_is_user_id("@"));
	CHECK(!tlbot_is_user_id("alice:example.org"));
	CHECK(!tlbot_is_user_id("@alice"));
	CHECK(!tlbot_is_user_id("@:example.org"));
	CHECK(!tlbot_is_user_id("@alice:"));
	CHECK(!tlbot_is_user_id("@al ice:example.org"));
	CHECK(!tlbot_is_user_id("@alice:exa mple.org"));
	CHECK(!tlbot_is_user_id("@alice:example.org:"));
	CHECK(!tlbot_is_user_id("@alice:example.org:123456"));
	CHECK(!tlbot_is_user_id("@alice:example.org/x"));
	CHECK(!tlbot_is_user_id("@ali<ce:example.org"));
	CHECK(!tlbot_is_user_id("@alice:[::1"));
	CHECK(!tlbot_is_user_id("@alice:[]"));
	CHECK(!tlbot_is_user_id("@caf\xc3\xa9:example.org"));
	CHECK(!tlbot_is_user_id("#room:example.org"));
	CHECK(!tlbot_is_user_id("!room:example.org"));
	/* 255 bytes is the limit */
	memset(longid, 'a', sizeof(longid));
	longid[0] = '@';
	memcpy(longid + 250, ":x.yz", 6);
	CHECK_INT(strlen(longid), ==, 255);
	CHECK(tlbot_is_user_id(longid));
	memcpy(longid + 251, ":x.yz", 6);
	CHECK(!tlbot_is_user_id(longid));
}

TEST(edit_distance)
{
	CHECK_INT(tlbot_edit_distance("", ""), ==, 0);
	CHECK_INT(tlbot_edit_distance("abc", ""), ==, 3);
	CHECK_INT(tlbot_edit_distance("", "ab"), ==, 2);
	CHECK_INT(tlbot_edit_distance("same", "same"), ==, 0);
	CHECK_INT(tlbot_edit_distance("kitten", "sitting"), ==, 3);
	CHECK_INT(tlbot_edit_distance("homeserver", "homeservr"), ==, 1);
	CHECK_INT(tlbot_edit_distance("region", "regoin"), ==, 1);  /* transposition */
	CHECK_INT(tlbot_edit_distance("ab", "ba"), ==, 1);
	/* optimal string alignment: no substring edited twice */
	CHECK_INT(tlbot_edit_distance("ca", "abc"), ==, 3);
	CHECK_INT(tlbot_edit_distance("abc", "ca"), ==, 3);
	CHECK_INT(tlbot_edit_distance("standup", "stnadup"), ==, 1);
	/* bytes: one accented letter is two bytes */
	CHECK_INT(tlbot_edit_distance("caf\xc3\xa9", "cafe"), ==, 2);
}

TEST(glob)
{
	CHECK(tlbot_glob_match("@*:example.gov.uk", "@alice:example.gov.uk"));
	CHECK(!tlbot_glob_match("@*:example.gov.uk", "@alice:evil.example"));
	CHECK(!tlbot_glob_match("@*:example.gov.uk", "@alice:example.gov.uk.evil"));
	CHECK(tlbot_glob_match("*", ""));
	CHECK(tlbot_glob_match("*", "anything"));
	CHECK(tlbot_glob_match("", ""));
	CHECK(!tlbot_glob_match("", "a"));
	CHECK(tlbot_glob_match("a?c", "abc"));
	CHECK(!tlbot_glob_match("a?c", "ac"));
	CHECK(tlbot_glob_match("*.gov.uk", "team.example.gov.uk"));
	CHECK(tlbot_glob_match("a*b*c", "aXXbYYc"));
	CHECK(tlbot_glob_match("a*b*c", "abbbc"));
	CHECK(!tlbot_glob_match("a*b*c", "acb"));
	CHECK(tlbot_glob_match("**a**", "xxa"));
	/* case-sensitive, like user ids */
	CHECK(!tlbot_glob_match("@alice:*", "@Alice:x"));
	CHECK(!tlbot_glob_match(NULL, "x"));
	CHECK(!tlbot_glob_match("x", NULL));
}

TEST(glob_no_blowup)
{
	static const char pat[] = "*a*a*a*a*a*a*a*a*a*a*a*b";
	char s[4001];

	/* a pathological pattern stays linear-ish (no exponential backtracking) */
	memset(s, 'a', sizeof(s) - 1);
	s[sizeof(s) - 1] = '\0';
	CHECK(!tlbot_glob_match(pat, s));
}

static const struct tap_test tests[] = {
	TEST_ENTRY(simple_command),
	TEST_ENTRY(family_lowercased),
	TEST_ENTRY(not_commands),
	TEST_ENTRY(custom_prefixes),
	TEST_ENTRY(double_quotes),
	TEST_ENTRY(single_quotes),
	TEST_ENTRY(typographic_quotes),
	TEST_ENTRY(adjacent_parts_join),
	TEST_ENTRY(quoted_and_bare_flags),
	TEST_ENTRY(unicode_and_newlines),
	TEST_ENTRY(unbalanced_quotes),
	TEST_ENTRY(invalid_text),
	TEST_ENTRY(limits),
	TEST_ENTRY(error_buffer_edge_cases),
	TEST_ENTRY(flags_forms),
	TEST_ENTRY(flags_values),
	TEST_ENTRY(flags_end_marker_and_quoted),
	TEST_ENTRY(flags_em_dash),
	TEST_ENTRY(flags_errors),
	TEST_ENTRY(mentions_json),
	TEST_ENTRY(mentions_pills),
	TEST_ENTRY(mentions_plain),
	TEST_ENTRY(mentions_order_and_dedupe),
	TEST_ENTRY(mentions_bounded),
	TEST_ENTRY(user_ids),
	TEST_ENTRY(edit_distance),
	TEST_ENTRY(glob),
	TEST_ENTRY(glob_no_blowup),
	TEST_END
};

TAP_MAIN(tests)
