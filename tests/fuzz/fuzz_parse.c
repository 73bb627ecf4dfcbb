/* libFuzzer target: command line parsing, flag binding and mention
 * collection on arbitrary bytes. Besides crashes and sanitizer reports it
 * aborts when an output breaks a documented promise. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "tlbot/parse.h"

static const char *const prefixes[] = { "!", "/", "tl!", NULL };
static const char *const spec[] = { "mine", "region=", "assignee=*", "note=", NULL };

static void
check(int ok)
{
	if (!ok)
		abort();
}

static void
on_mention(const char *id, void *arg)
{
	size_t *n = arg;

	check(tlbot_is_user_id(id));
	(*n)++;
}

/* err must be a non-empty single line. */
static void
check_err(const char *err)
{
	check(err[0] != '\0');
	check(strchr(err, '\n') == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *body = malloc(size + 1), err[512];
	struct tlbot_cmdline cl;
	size_t i, first, n = 0, got;
	json_t *ids;
	int rc;

	if (body == NULL)
		return 0;
	memcpy(body, data, size);
	body[size] = '\0';

	rc = tlbot_cmdline_parse(body, prefixes, &cl, err, sizeof(err));
	check(rc >= -1 && rc <= 1);
	if (rc == -1)
		check_err(err);
	if (rc != 1)
		check(cl.name == NULL && cl.ntok == 0);
	if (rc == 1) {
		check(cl.name != NULL && cl.ntok <= TLBOT_PARSE_MAX_TOKENS);
		for (i = 0; cl.name[i]; i++)
			check(!(cl.name[i] >= 'A' && cl.name[i] <= 'Z'));
		for (i = 0; i < cl.ntok; i++) {
			check(cl.tok[i].text != NULL);
			check(cl.tok[i].bare <= strlen(cl.tok[i].text));
			check(strlen(cl.tok[i].text) <= size);
		}
		for (first = 0; first <= 2; first++) {
			struct tlbot_args a;

			if (tlbot_args_bind(&cl, first, spec, &a, err, sizeof(err)) != 0) {
				check_err(err);
				check(a.argc == 0 && a.nflags == 0);
				continue;
			}
			check(a.argc + a.nflags <= cl.ntok);
			for (i = 0; i < a.nflags; i++)
				check(tlbot_args_has(&a, a.flags[i].name));
			(void)tlbot_args_get(&a, "region");
			(void)tlbot_args_get(&a, "mine");
		}
		/* no flags at all */
		{
			struct tlbot_args a;

			if (tlbot_args_bind(&cl, 0, NULL, &a, err, sizeof(err)) != 0)
				check_err(err);
		}
		tlbot_cmdline_release(&cl);
	}

	/* mentions: the input as body and as HTML; as m.mentions if it is JSON */
	ids = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
	got = tlbot_mentions_collect(body, body, ids, on_mention, &n);
	check(got == n);
	json_decref(ids);

	(void)tlbot_is_user_id(body);
	/* small inputs: glob and (as used, on short words) edit distance on
	 * the two halves */
	if (size >= 1 && size <= 512) {
		char *a = body, *b = body + size / 2, saved = *b;

		*b = '\0';
		(void)tlbot_glob_match(a, b + 1);
		if (size <= 48)
			check(tlbot_edit_distance(a, b + 1) <= size);
		*b = saved;
	}
	free(body);
	return 0;
}
