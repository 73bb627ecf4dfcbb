/* The command table: unique names and aliases, complete entries, every
 * family file in commands/ registered, and !help listing them all. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cmdtest.h"
#include "tap.h"
#include "tlbot/args.h"
#include "tlbot/command.h"

TEST(names_and_aliases_unique)
{
	const char *seen[256];
	size_t n = 0, i, j, k;

	for (i = 0; tlbot_commands[i]; i++) {
		const struct tlbot_cmd *c = tlbot_commands[i];
		const char *names[32];
		size_t nn = 0;

		names[nn++] = c->name;
		for (j = 0; c->aliases && c->aliases[j] && nn < 32; j++)
			names[nn++] = c->aliases[j];
		for (j = 0; j < nn; j++) {
			for (k = 0; k < n; k++)
				if (strcasecmp(seen[k], names[j]) == 0) {
					printf("#   duplicate command name or alias: %s\n", names[j]);
					CHECK(0);
				}
			if (n < 256)
				seen[n++] = names[j];
		}
	}
	CHECK(n >= 2);
}

/* A parameter table: positionals before flags, no required positional
 * after an optional one, a repeating positional only last, flags named
 * --x, ENUM and REF with their choices. */
static int
params_well_formed(const char *family, const struct tlbot_param *params)
{
	const struct tlbot_param *p;
	int flags = 0, optional = 0, repeat = 0;

	for (p = params; p && p->name; p++) {
		int is_flag = p->name[0] == '-' && p->name[1] == '-';

		if ((is_flag && !p->name[2]) || (!is_flag && flags) || (!is_flag && repeat) ||
		    (!is_flag && optional && !(p->mode & TLBOT_OPTIONAL)) ||
		    ((p->type == TLBOT_P_ENUM || p->type == TLBOT_P_REF) && !p->choices) ||
		    (!is_flag && p->type == TLBOT_P_BOOL)) {
			printf("#   %s: parameter %s is out of place or incomplete\n", family, p->name);
			return 0;
		}
		flags |= is_flag;
		if (!is_flag && (p->mode & TLBOT_OPTIONAL))
			optional = 1;
		if (!is_flag && (p->mode & TLBOT_REPEAT))
			repeat = 1;
	}
	return 1;
}

TEST(entries_complete)
{
	size_t i;

	for (i = 0; tlbot_commands[i]; i++) {
		const struct tlbot_cmd *c = tlbot_commands[i];
		const struct tlbot_subcmd *s;

		CHECK(c->name && *c->name);
		CHECK(c->summary && *c->summary);
		CHECK(c->handler != NULL || c->subcmds != NULL);
		for (s = c->subcmds; s && s->name; s++) {
			const struct tlbot_subcmd *t;

			CHECK(s->handler != NULL);
			CHECK(params_well_formed(c->name, s->params));
			CHECK(s->summary && *s->summary);
			for (t = s + 1; t->name; t++)
				if (strcasecmp(t->name, s->name) == 0) {
					printf("#   %s: duplicate subcommand %s\n", c->name, s->name);
					CHECK(0);
				}
		}
	}
}

/* Every example !help shows passes the checker of its own table, so the
 * examples cannot drift from the arguments. */
TEST(examples_pass_their_own_checks)
{
	static struct tlbot_checked ck;
	size_t i;

	for (i = 0; tlbot_commands[i]; i++) {
		const struct tlbot_cmd *c = tlbot_commands[i];
		const struct tlbot_subcmd *s;
		size_t n = 0;

		for (s = c->subcmds; s == NULL || s->name; s = s ? s + 1 : NULL) {
			const char *ex = s ? s->example : c->example;
			char body[1200], err[1024];
			struct tlbot_cmdline cl;
			int usage;

			if (ex) {
				n++;
				snprintf(body, sizeof(body), "!%s %s", c->name, ex);
				CHECK_OR_RETURN(tlbot_cmdline_parse(body, NULL, &cl, err, sizeof(err)) == 1);
				if (tlbot_args_check(s ? s->params : c->params, &cl, s ? 1 : 0,
						     (time_t)1796126400, "Europe/London", &ck, err,
						     sizeof(err), &usage) != 0) {
					printf("#   example '%s' fails: %s\n", body, err);
					CHECK(0);
				}
				tlbot_cmdline_release(&cl);
			}
			if (s == NULL)
				break;
		}
		if (n == 0 && strcmp(c->name, "ping") != 0) {
			printf("#   %s has no example\n", c->name);
			CHECK(0);
		}
	}
}

/* Every "const struct tlbot_cmd tlbot_cmd_X =" in a commands/ file is in the table. */
TEST(every_family_file_registered)
{
	char dirpath[4096], path[4400], line[1024];
	struct dirent *de;
	DIR *dir;
	int found = 0;

	snprintf(dirpath, sizeof(dirpath), "%s/commands", TLBOT_SOURCE_DIR);
	dir = opendir(dirpath);
	CHECK_OR_RETURN(dir != NULL);
	while ((de = readdir(dir)) != NULL) {
		FILE *f;
		size_t len = strlen(de->d_name);

		if (len < 3 || strcmp(de->d_name + len - 2, ".c") != 0 || strcmp(de->d_name, "table.c") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dirpath, de->d_name);
		f = fopen(path, "r");
		if (f == NULL)
			continue;
		while (fgets(line, sizeof(line), f)) {
			const char *p = strstr(line, "const struct tlbot_cmd tlbot_cmd_");
			char sym[128];
			size_t k = 0, i;
			int registered = 0;

			if (p != line)
				continue;
			p += strlen("const struct tlbot_cmd ");
			while ((p[k] == '_' || (p[k] >= 'a' && p[k] <= 'z') || (p[k] >= '0' && p[k] <= '9')) && k < sizeof(sym) - 1) {
				sym[k] = p[k];
				k++;
			}
			sym[k] = '\0';
			if (strchr(line, ';') && !strchr(line, '='))
				continue; /* a declaration, not the definition */
			found++;
			/* the table refers to it: its .name is one of the table's */
			for (i = 0; tlbot_commands[i]; i++) {
				char want[160];

				snprintf(want, sizeof(want), "tlbot_cmd_%s", tlbot_commands[i]->name);
				if (strcmp(want, sym) == 0)
					registered = 1;
			}
			if (!registered)
				printf("#   %s defines %s, which is not in commands/table.c\n", de->d_name, sym);
			CHECK(registered);
		}
		fclose(f);
	}
	closedir(dir);
	CHECK(found >= 2);
}

TEST(help_lists_every_family)
{
	struct cmdtest t;
	size_t i;
	char *all;

	cmdtest_init(&t);
	CHECK_INT(cmdtest_run(&t, "@a:test", "!r:test", "!help"), ==, 1);
	all = strdup(cmdtest_reply(&t, 0) ? cmdtest_reply(&t, 0) : "");
	for (i = 0; tlbot_commands[i]; i++) {
		char name[80];

		snprintf(name, sizeof(name), "!%s", tlbot_commands[i]->name);
		CHECK_CONTAINS(all, name);
		snprintf(name, sizeof(name), "!help %s", tlbot_commands[i]->name);
		CHECK_INT(cmdtest_run(&t, "@a:test", "!r:test", name), ==, 1);
		CHECK_NOT_CONTAINS(cmdtest_reply(&t, 0), "no command named");
	}
	free(all);
	cmdtest_release(&t);
}

static const struct tap_test tests[] = {
	TEST_ENTRY(names_and_aliases_unique),
	TEST_ENTRY(entries_complete),
	TEST_ENTRY(every_family_file_registered),
	TEST_ENTRY(examples_pass_their_own_checks),
	TEST_ENTRY(help_lists_every_family),
	TEST_END,
};

TAP_MAIN(tests)
