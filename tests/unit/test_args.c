/* The typed-argument checker (bot/core/args.c): what dispatch hands a
 * handler, and the one wording of every refusal. */
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "tlbot/args.h"

/* Tuesday 2026-12-01 12:00 UTC */
#define NOW ((time_t)1796126400)
#define ZONE "Europe/London"

static const struct tlbot_param note_params[] = {
	{ TLBOT_REF("id", "E") },
	{ TLBOT_TEXT("text", 20) },
	TLBOT_PARAMS_END,
};

static const struct tlbot_param many_params[] = {
	{ TLBOT_TEXT("title", 0), .mode = TLBOT_WORD },
	{ TLBOT_ENUM("decision", "persevere|pivot|stop") },
	{ TLBOT_USER("people"), .mode = TLBOT_OPTIONAL | TLBOT_REPEAT },
	{ TLBOT_DATE("--due"), .mode = TLBOT_NONE_OK },
	{ TLBOT_DURATION("--in") },
	{ TLBOT_TIME("--at") },
	{ TLBOT_ZONE("--zone") },
	{ TLBOT_INT("--page", 1, 100) },
	{ TLBOT_NUM("--value") },
	{ TLBOT_BOOL("--mine") },
	TLBOT_PARAMS_END,
};

static const struct tlbot_param rest_params[] = {
	{ TLBOT_TEXT("title", 0) },
	{ TLBOT_DATE("--due") },
	TLBOT_PARAMS_END,
};

static const struct tlbot_param room_params[] = {
	{ TLBOT_ROOM("where") },
	{ TLBOT_ROOM_ID("--leave") },
	TLBOT_PARAMS_END,
};

static struct tlbot_checked ck;
static char err[1024];
static int with_usage;

/* Check body's arguments after the family name; 0 or -1. */
static int
check(const struct tlbot_param *params, const char *body)
{
	struct tlbot_cmdline cl;
	int rc;

	err[0] = '\0';
	if (tlbot_cmdline_parse(body, NULL, &cl, err, sizeof(err)) != 1)
		return -2;
	/* the checker borrows the texts: keep them by leaking this cmdline
	 * until the next call (tests only) */
	static struct tlbot_cmdline keep;
	static int kept;

	if (kept)
		tlbot_cmdline_release(&keep);
	keep = cl;
	kept = 1;
	rc = tlbot_args_check(params, &keep, 0, NOW, ZONE, &ck, err, sizeof(err), &with_usage);
	return rc;
}

TEST(rest_of_the_line_needs_no_quotes)
{
	CHECK_INT(check(note_params, "!exp E-1 Spoke to the team"), ==, 0);
	CHECK_INT(ck.args.argc, ==, 2);
	CHECK_STR(ck.args.argv[0], "E-1");
	CHECK_INT(ck.args.val[0].n, ==, 1);
	CHECK_STR(ck.args.argv[1], "Spoke to the team");
	/* quotes still work, and ids are normalised */
	CHECK_INT(check(note_params, "!exp e-7 \"Spoke to them\""), ==, 0);
	CHECK_STR(ck.args.argv[0], "E-7");
	CHECK_STR(ck.args.argv[1], "Spoke to them");
	CHECK_INT(check(note_params, "!exp 12 x"), ==, 0);
	CHECK_STR(ck.args.argv[0], "E-12");
	/* flags anywhere; the words around them are the text */
	CHECK_INT(check(rest_params, "!c Cut the cost --due 31 Jan of housing"), ==, 0);
	CHECK_STR(ck.args.argv[0], "Cut the cost of housing");
	CHECK_STR(tlbot_args_get(&ck.args, "due"), "2027-01-31");
	/* the text limit counts characters */
	CHECK_INT(check(note_params, "!exp E-1 ééééééééééééééééééééé"), ==, -1);
	CHECK_STR(err, "text is too long: 21 characters, at most 20");
	/* a --word inside the text: quoting is the problem, so say so */
	CHECK_INT(check(note_params, "!exp E-1 we tried --value pricing"), ==, -1);
	CHECK_CONTAINS(err, "unknown flag --value");
	CHECK_CONTAINS(err, "put the text in quotes");
}

TEST(typed_values)
{
	CHECK_INT(check(many_params, "!x t STOP @a:test @b:test --due friday --in 2 hours --at 5pm"
			" --zone Europe/Paris --page 3 --value -2.5 --mine"), ==, 0);
	CHECK_STR(ck.args.argv[1], "stop");
	CHECK_INT(ck.args.argc, ==, 4);
	CHECK_STR(ck.args.argv[3], "@b:test");
	CHECK_STR(tlbot_args_get(&ck.args, "due"), "2026-12-04");
	CHECK_STR(tlbot_args_get(&ck.args, "in"), "7200s");
	CHECK_INT(tlbot_args_flag_val(&ck.args, "in")->n, ==, 7200);
	CHECK_STR(tlbot_args_get(&ck.args, "at"), "17:00");
	CHECK_INT(tlbot_args_flag_val(&ck.args, "--at")->n, ==, 1020);
	CHECK_INT(tlbot_args_flag_val(&ck.args, "page")->n, ==, 3);
	CHECK(tlbot_args_flag_val(&ck.args, "value")->d == -2.5);
	CHECK_INT(tlbot_args_has(&ck.args, "mine"), ==, 1);
	CHECK(tlbot_args_flag_val(&ck.args, "mine") == NULL);
	CHECK(tlbot_args_val(&ck.args, 0) != NULL && tlbot_args_val(&ck.args, 9) == NULL);
	/* multi-word dates stop where the date does */
	CHECK_INT(check(many_params, "!x t stop --due next monday @a:test"), ==, 0);
	CHECK_STR(tlbot_args_get(&ck.args, "due"), "2026-12-07");
	CHECK_STR(ck.args.argv[2], "@a:test");
	CHECK_INT(check(many_params, "!x t stop --due none"), ==, 0);
	CHECK_STR(tlbot_args_get(&ck.args, "due"), "none");
}

struct refusal {
	const char *body, *want;
	int usage;
};

static const struct refusal refusals[] = {
	{ "!x", "missing title", 1 },
	{ "!x t", "missing persevere|pivot|stop", 1 },
	{ "!exp", "missing E-12", 1 },
	{ "!exp 34x y", "bad experiment id '34x': write it as E-34", 0 },
	{ "!x t maybe", "unknown decision 'maybe': use persevere, pivot or stop", 0 },
	{ "!x t stop @bad:", "bad user id '@bad:': write it as @name:server", 0 },
	{ "!x t stop --page 0", "bad page '0': write a whole number from 1 to 100", 0 },
	{ "!x t stop --page 2x", "bad page '2x'", 0 },
	{ "!x t stop --value 12abc", "bad number '12abc' for --value: write a plain number", 0 },
	{ "!x t stop --value nan", "bad number 'nan' for --value", 0 },
	{ "!x t stop --due 2026-13-45", "bad date '2026-13-45' for --due: accepted dates: YYYY-MM-DD", 0 },
	{ "!x t stop --due tuesday", "bad date 'tuesday' for --due: 'tuesday' is today", 0 },
	{ "!x t stop --in 2", "bad duration '2' for --in: '2' needs a unit", 0 },
	{ "!x t stop --at 25:00", "bad time '25:00' for --at: write a time such as 17:00", 0 },
	{ "!x t stop --zone Mars/Olympus", "unknown time zone 'Mars/Olympus'", 0 },
	{ "!x t stop --mine=yes", "--mine does not take a value", 1 },
	{ "!x t stop --bogus", "unknown flag --bogus", 1 },
	{ NULL, NULL, 0 },
};

TEST(one_wording_for_every_refusal)
{
	const struct refusal *r;

	for (r = refusals; r->body; r++) {
		const struct tlbot_param *p = strncmp(r->body, "!exp", 4) == 0 ? note_params : many_params;

		CHECK_INT(check(p, r->body), ==, -1);
		if (strstr(err, r->want) == NULL)
			printf("#   %s: got '%s', want '%s'\n", r->body, err, r->want);
		CHECK(strstr(err, r->want) != NULL);
		CHECK_INT(with_usage, ==, r->usage);
	}
	/* the quote hint only where a word of text may have been cut off */
	CHECK_INT(check(many_params, "!x two words stop"), ==, -1);
	CHECK_CONTAINS(err, "unknown decision 'words'");
	CHECK_INT(check(many_params, "!x t stop"), ==, 0);
	{
		static const struct tlbot_param no_text[] = { { TLBOT_INT("n", 1, 9) }, TLBOT_PARAMS_END };
		static const struct tlbot_param word_text[] = {
			{ TLBOT_TEXT("a", 0), .mode = TLBOT_WORD }, TLBOT_PARAMS_END };

		CHECK_INT(check(no_text, "!x 1 2"), ==, -1);
		CHECK_STR(err, "unexpected argument '2'");
		CHECK_INT(check(word_text, "!x two words"), ==, -1);
		CHECK_STR(err, "unexpected argument 'words' (quote text with spaces)");
	}
}

/* ROOM: a room id or an alias, by the shapes links are read with
 * (bot/core/mxuri.h); ROOM_ID: room ids only. */
TEST(room_values)
{
	CHECK_INT(check(room_params, "!x !abc:test --leave !def:test"), ==, 0);
	CHECK_STR(ck.args.argv[0], "!abc:test");
	CHECK_STR(tlbot_args_get(&ck.args, "leave"), "!def:test");
	CHECK_INT(check(room_params, "!x #team:test"), ==, 0);
	CHECK_STR(ck.args.argv[0], "#team:test");
	/* a room id of a version 12 room has no server part */
	CHECK_INT(check(room_params, "!x !Gd2zXyjVm8ZxRM6zBAjQGDaXmPvDTBX1xRlIgiJ9nNw"), ==, 0);
	CHECK_INT(check(room_params, "!x team"), ==, -1);
	CHECK_STR(err, "bad room 'team': write it as !abc:server or #name:server");
	CHECK_INT(with_usage, ==, 0);
	CHECK_INT(check(room_params, "!x #team"), ==, -1);
	CHECK_STR(err, "bad room '#team': write it as !abc:server or #name:server");
	CHECK_INT(check(room_params, "!x #:test"), ==, -1);
	CHECK_INT(check(room_params, "!x !"), ==, -1);
	CHECK_INT(check(room_params, "!x \"!a b:test\""), ==, -1);
	CHECK_INT(check(room_params, "!x !abc:test --leave #team:test"), ==, -1);
	CHECK_STR(err, "bad room id '#team:test' for --leave: write it as !abc:server");
	CHECK_INT(check(room_params, "!x"), ==, -1);
	CHECK_STR(err, "missing ROOM");
	CHECK_INT(with_usage, ==, 1);
}

TEST(usage_from_the_table)
{
	struct tlbot_buf b;

	tlbot_buf_init(&b, 4096);
	tlbot_params_usage(many_params, &b);
	CHECK_STR(tlbot_buf_str(&b), "\"title\" persevere|pivot|stop [@user...] [--due DATE]"
		  " [--in DURATION] [--at HH:MM] [--zone ZONE] [--page N] [--value N] [--mine]");
	tlbot_buf_reset(&b);
	tlbot_params_usage(note_params, &b);
	CHECK_STR(tlbot_buf_str(&b), "E-12 TEXT...");
	tlbot_buf_reset(&b);
	tlbot_params_usage(room_params, &b);
	CHECK_STR(tlbot_buf_str(&b), "ROOM [--leave ROOM]");
	tlbot_buf_release(&b);
}

static const struct tap_test tests[] = {
	TEST_ENTRY(rest_of_the_line_needs_no_quotes),
	TEST_ENTRY(typed_values),
	TEST_ENTRY(one_wording_for_every_refusal),
	TEST_ENTRY(room_values),
	TEST_ENTRY(usage_from_the_table),
	TEST_END,
};

TAP_MAIN(tests)
