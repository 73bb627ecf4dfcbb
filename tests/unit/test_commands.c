/* The command table: unique names and aliases, complete entries, every
 * family file in commands/ registered, and !help listing them all. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cmdtest.h"
#include "tap.h"
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
			CHECK(s->usage != NULL && strncmp(s->usage, s->name, strlen(s->name)) == 0);
			CHECK(s->summary && *s->summary);
			CHECK(s->max_args < 0 || s->max_args >= s->min_args);
			for (t = s + 1; t->name; t++)
				if (strcasecmp(t->name, s->name) == 0) {
					printf("#   %s: duplicate subcommand %s\n", c->name, s->name);
					CHECK(0);
				}
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
	TEST_ENTRY(help_lists_every_family),
	TEST_END,
};

TAP_MAIN(tests)
