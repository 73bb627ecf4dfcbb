/* libFuzzer target: the YAML config loader and the checks after it, on
 * arbitrary bytes. Every problem message must be one line. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tlbot/config.h"

static void
check(int ok)
{
	if (!ok)
		abort();
}

static void
on_problem(int line, const char *msg, void *arg)
{
	int *n = arg;

	check(line >= 0);
	check(msg != NULL && msg[0] != '\0');
	check(strchr(msg, '\n') == NULL && strchr(msg, '\r') == NULL);
	(*n)++;
}

/* A tiny fixed environment, so the overlay runs too. */
static char *
fake_env(const char *name)
{
	if (strcmp(name, "TLBOT_ADMINS") == 0)
		return (char *)" @a:example.org, ,@*:x.org,";
	if (strcmp(name, "TLBOT_LOG_LEVEL") == 0)
		return (char *)"debug";
	return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tlbot_config c;
	int n = 0, rc;

	tlbot_config_init(&c);
	rc = tlbot_config_load_string(&c, (const char *)data, size, on_problem, &n);
	check(rc == n);
	rc = tlbot_config_load_env(&c, fake_env, on_problem, &n);
	check(rc == 0);
	(void)tlbot_config_finish(&c, on_problem, &n);
	check(c.prefixes.n < 64 && c.prefixes.v[c.prefixes.n] == NULL);
	(void)tlbot_config_user_allowed(&c, "@alice:example.org");
	(void)tlbot_config_room_allowed(&c, "!room:example.org");
	(void)tlbot_config_is_admin(&c, "@a:example.org");
	tlbot_config_release(&c);
	return 0;
}
