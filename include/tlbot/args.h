/* The typed-argument checker: binds a command line against a parameter
 * table (struct tlbot_param, command.h), checks every value with one
 * wording for every error and normalises it, and writes usage lines from
 * the same table. Pure apart from zone lookups; used by dispatch, !help
 * and the MSC4391 descriptions. */
#ifndef TLBOT_ARGS_H
#define TLBOT_ARGS_H

#include <time.h>

#include "tlbot/buf.h"
#include "tlbot/command.h"
#include "tlbot/parse.h"

#define TLBOT_ARGS_POOL (2 * TLBOT_PARSE_MAX_BODY + 2048)

/* Everything the handler's args borrow from; large: allocate it. */
struct tlbot_checked {
	struct tlbot_cmdline cl;     /* tokens after joining multi-word values (texts borrowed) */
	struct tlbot_args args;      /* what the handler gets */
	const struct tlbot_param *argp[TLBOT_PARSE_MAX_TOKENS]; /* the param of argv[i] */
	char specbuf[TLBOT_PARSE_MAX_TOKENS][48];
	const char *spec[TLBOT_PARSE_MAX_TOKENS + 1];
	char pool[TLBOT_ARGS_POOL];
	size_t used;
};

/* Check the tokens of cl from index first on against params (may be NULL:
 * no arguments). now and tz are for relative dates. Returns 0 with out
 * filled, or -1 with a one-line reason in err; *with_usage is then 1 when
 * the usage line should follow the reason. */
int tlbot_args_check(const struct tlbot_param *params, const struct tlbot_cmdline *cl,
		     size_t first, time_t now, const char *tz, struct tlbot_checked *out,
		     char *err, size_t errlen, int *with_usage);

/* Append the usage of params ("C-12 \"title\" [--due DATE]") to b. */
void tlbot_params_usage(const struct tlbot_param *params, struct tlbot_buf *b);
/* The label usage writes for one param's value ("DATE", "C-12", "@user"). */
void tlbot_param_label(const struct tlbot_param *p, char *out, size_t outlen);
/* 1 if p is a flag ("--due"). */
int tlbot_param_is_flag(const struct tlbot_param *p);

#endif
