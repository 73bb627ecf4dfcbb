/* Messages as clients send them (issue 13): a command sent as a reply with
 * the spec's reply fallback, two commands on two lines, !help's first
 * steps and "did you mean". Through the router, as cmdtest does. */
#include "cmdtest.h"
#include "tap.h"

#define ROOM "!team:test"
#define MOD "@mod:test"

static const char reply_extra[] =
	"{\"m.relates_to\":{\"m.in_reply_to\":{\"event_id\":\"$orig:test\"}},"
	"\"format\":\"org.matrix.custom.html\","
	"\"formatted_body\":\"<mx-reply><blockquote><a href=\\\"https://matrix.to/#/$orig:test\\\">"
	"In reply to</a> <a href=\\\"https://matrix.to/#/@bob:test\\\">@bob:test</a><br>"
	"who can check this?</blockquote></mx-reply>!challenge new Check the figures\"}";

TEST(command_sent_as_a_reply)
{
	struct cmdtest t;

	cmdtest_init(&t);
	cmdtest_power(&t, ROOM, MOD, 50);
	CHECK_INT(cmdtest_event(&t, MOD, ROOM,
				"> <@bob:test> who can check this?\n> second line\n\n"
				"!challenge new Check the figures",
				reply_extra, NULL, 0), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "C-1");
	CHECK_INT(cmdtest_count(&t, "SELECT COUNT(*) FROM challenges WHERE title = ?",
				"Check the figures"), ==, 1);
	/* the quoted sender was not mentioned: nobody is pinged */
	CHECK_NOT_CONTAINS(t.out_content[0], "@bob:test\"]");
	/* a plain "> quote" that is not a reply is still not a command */
	CHECK_INT(cmdtest_run(&t, MOD, ROOM, "> !ping"), ==, 0);
	cmdtest_release(&t);
}

TEST(two_commands_on_two_lines)
{
	struct cmdtest t;

	cmdtest_init(&t);
	cmdtest_power(&t, ROOM, MOD, 50);
	CHECK_INT(cmdtest_run(&t, MOD, ROOM,
			      "!challenge new First challenge\n!challenge new Second line challenge"),
		  ==, 2);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "C-1");
	CHECK_CONTAINS(cmdtest_reply(&t, 1), "C-2");
	CHECK_INT(cmdtest_count(&t, "SELECT COUNT(*) FROM challenges WHERE title = ?",
				"First challenge"), ==, 1);
	CHECK_INT(cmdtest_count(&t, "SELECT COUNT(*) FROM challenges WHERE title = ?",
				"Second line challenge"), ==, 1);
	/* each reply has its own transaction id: the event id and a running
	 * index, so they stay in order and are sent once */
	CHECK_INT(cmdtest_count(&t, "SELECT COUNT(DISTINCT txn_id) FROM outbox", NULL), ==, 2);
	CHECK_INT(cmdtest_count(&t, "SELECT COUNT(*) FROM outbox WHERE txn_id LIKE 'tlbot.e.$ev%:test.1'",
				NULL), ==, 1);
	/* one refused line does not stop the next, and is not stored as text */
	CHECK_INT(cmdtest_run(&t, MOD, ROOM, "!challenge show C-99\n!ping"), ==, 2);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "no challenge C-99 here");
	CHECK_STR(cmdtest_reply(&t, 1), "pong");
	/* a text that runs over two lines stays one command */
	CHECK_INT(cmdtest_run(&t, MOD, ROOM, "!challenge new Third\nstill the title"), ==, 1);
	CHECK_INT(cmdtest_count(&t, "SELECT COUNT(*) FROM challenges WHERE title LIKE 'Third%'",
				NULL), ==, 1);
	cmdtest_release(&t);
}

TEST(help_first_steps_and_did_you_mean)
{
	struct cmdtest t;
	const char *b;

	cmdtest_init(&t);
	CHECK_INT(cmdtest_run(&t, MOD, ROOM, "!help"), ==, 1);
	b = cmdtest_reply(&t, 0);
	CHECK_OR_RETURN(b != NULL);
	/* team, challenge, stand-up: in that order, before the full list */
	CHECK(strstr(b, "\n1. !team add") != NULL); /* one step a line in the plain body */
	CHECK(strstr(b, "\n2. !challenge new") != NULL);
	CHECK(strstr(b, "\n3. !standup schedule") != NULL);
	CHECK(strstr(b, "!team add") < strstr(b, "!challenge new"));
	CHECK(strstr(b, "!challenge new") < strstr(b, "!standup schedule"));
	CHECK(strstr(b, "!standup schedule") < strstr(b, "All commands"));
	CHECK_INT(cmdtest_run(&t, MOD, ROOM, "!help experimnet"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "no command named 'experimnet': did you mean !help experiment?");
	CHECK_INT(cmdtest_run(&t, MOD, ROOM, "!help zzzzzzzz"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "!help lists all commands");
	/* long help: short paragraphs, usage from the table, examples */
	CHECK_INT(cmdtest_run(&t, MOD, ROOM, "!help exp"), ==, 1);
	CHECK_CONTAINS(cmdtest_html(&t, 0), "<p>");
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "!experiment note E-12 TEXT...");
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "Example: !experiment note E-34 Spoke to the team");
	CHECK_INT(cmdtest_run(&t, MOD, ROOM, "!help exp note"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "!experiment note E-12 TEXT...");
	CHECK_NOT_CONTAINS(cmdtest_reply(&t, 0), "!experiment new");
	cmdtest_release(&t);
}

static const struct tap_test tests[] = {
	TEST_ENTRY(command_sent_as_a_reply),
	TEST_ENTRY(two_commands_on_two_lines),
	TEST_ENTRY(help_first_steps_and_did_you_mean),
	TEST_END,
};

TAP_MAIN(tests)
