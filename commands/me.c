/* !me: a person's own settings: their time zone (stand-up prompts at their
 * local time, reminder times read in it) and what the bot knows about
 * them. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tlbot/command.h"
#include "tlbot/tz.h"

static const char *const schema_v1 =
        "CREATE TABLE me_prefs (user_id TEXT PRIMARY KEY, tz TEXT, updated_at INTEGER);";
static const char *const migrations[] = {schema_v1, NULL};
static const struct tlbot_schema schema = {"me", migrations};

/* Tell every family that scheduled things at the person's local time
 * (the stand-up's personal prompts) that their zone changed. 0 or -1. */
static int
tz_changed(struct tlbot_ctx *ctx, const char *user_id)
{
	size_t i;

	for (i = 0; tlbot_commands[i]; i++)
		if (tlbot_commands[i]->user_tz_changed &&
		    tlbot_commands[i]->user_tz_changed(ctx, user_id) != 0)
			return -1;
	return 0;
}

/* The user_tz hook: the zone the person chose, from this family's table. */
static int
user_tz(struct tlbot_ctx *ctx, const char *user_id, char *out, size_t outlen)
{
	char *tz = NULL;
	int rc = tlbot_db_text(ctx, &tz, "SELECT tz FROM me_prefs WHERE user_id = ?", "t", user_id);

	if (rc == 0 && tz == NULL)
		rc = 1;
	if (rc == 0)
		snprintf(out, outlen, "%s", tz);
	free(tz);
	return rc;
}

/* A zone for what people type instead of an IANA name ("london", "new
 * york", "uk", "bst"): the one Region/City that exists, into out. 0 found,
 * -1 none. */
static int
suggest_tz(const char *typed, char *out, size_t outlen)
{
	static const char *const regions[] = {"Europe",   "America", "Asia",     "Africa",
	                                      "Australia", "Pacific", "Atlantic", "Indian", NULL};
	static const struct {
		const char *word, *zone;
	} known[] = {{"uk", "Europe/London"},      {"gb", "Europe/London"},
	             {"bst", "Europe/London"},     {"england", "Europe/London"},
	             {"scotland", "Europe/London"}, {"wales", "Europe/London"},
	             {"britain", "Europe/London"}, {"ireland", "Europe/Dublin"},
	             {"cet", "Europe/Paris"},      {"cest", "Europe/Paris"},
	             {"est", "America/New_York"},  {"pst", "America/Los_Angeles"},
	             {NULL, NULL}};
	char city[128], cand[192];
	size_t i, j = 0;
	int up = 1;

	for (i = 0; known[i].word; i++)
		if (strcasecmp(typed, known[i].word) == 0) {
			snprintf(out, outlen, "%s", known[i].zone);
			return 0;
		}
	for (i = 0; typed[i] && j + 1 < sizeof(city); i++) {
		unsigned char c = (unsigned char)typed[i];

		if (c == ' ' || c == '_' || c == '-') {
			city[j++] = c == '-' ? '-' : '_';
			up = 1;
		} else if (isalpha(c)) {
			city[j++] = (char)(up ? toupper(c) : tolower(c));
			up = 0;
		} else {
			return -1;
		}
	}
	city[j] = '\0';
	if (j == 0)
		return -1;
	for (i = 0; regions[i]; i++) {
		snprintf(cand, sizeof(cand), "%s/%s", regions[i], city);
		if (tlbot_tz_valid(cand)) {
			snprintf(out, outlen, "%s", cand);
			return 0;
		}
	}
	return -1;
}

/* 1 for zones without the UK's summer time that people in the UK pick by
 * mistake. */
static int
fixed_uk_like(const char *tz)
{
	static const char *const fixed[] = {"GMT",     "UTC",     "Etc/GMT", "Etc/UTC", "GMT0",
	                                    "Etc/GMT0", "Etc/UCT", "UCT",     "Zulu",    "Etc/Zulu",
	                                    "Universal", "Etc/Universal", "Etc/Greenwich",
	                                    "Greenwich", NULL};
	size_t i;

	for (i = 0; fixed[i]; i++)
		if (strcasecmp(tz, fixed[i]) == 0)
			return 1;
	return 0;
}

static int
set_tz(struct tlbot_ctx *ctx, const char *tz)
{
	int reset = strcasecmp(tz, "default") == 0 || strcasecmp(tz, "reset") == 0 ||
	            strcasecmp(tz, "none") == 0;
	char warn[256] = "";

	if (!reset && !tlbot_tz_valid(tz)) {
		char sug[192];

		if (suggest_tz(tz, sug, sizeof(sug)) == 0)
			return tlbot_fail(ctx, "unknown time zone '%s': did you mean %s? (`%sme tz %s`)",
			                  tz, sug, tlbot_ctx_prefix(ctx), sug);
		return tlbot_fail(ctx,
		                  "unknown time zone '%s': use an IANA name such as "
		                  "Europe/London, Europe/Paris or America/New_York",
		                  tz);
	}
	if (tlbot_db_exec(ctx,
	                  "INSERT INTO me_prefs(user_id, tz, updated_at) VALUES (?, ?, ?)"
	                  " ON CONFLICT(user_id) DO UPDATE SET tz = excluded.tz,"
	                  " updated_at = excluded.updated_at",
	                  "tti", tlbot_ctx_sender(ctx), reset ? NULL : tz,
	                  (int64_t)tlbot_ctx_now(ctx)) != 0 ||
	    tz_changed(ctx, tlbot_ctx_sender(ctx)) != 0)
		return -1;
	if (reset)
		return tlbot_replyf(ctx, "Your time zone is back to the default (%s).",
		                    tlbot_ctx_default_tz(ctx) ? tlbot_ctx_default_tz(ctx) : "UTC");
	if (fixed_uk_like(tz))
		snprintf(warn, sizeof(warn),
		         " Note: %s has no summer time, while the UK follows Europe/London (GMT in "
		         "winter, BST in summer): in the UK, use `%sme tz Europe/London`.",
		         tz, tlbot_ctx_prefix(ctx));
	return tlbot_replyf(ctx,
	                    "Your time zone is now %s: stand-up prompts come at the stand-up "
	                    "time in it, and reminder times you give are read in it.%s",
	                    tz, warn);
}

/* Each family's lines about the person (their away periods, the
 * reminders they set...), in table order. 0 or -1. */
static int
about_user(struct tlbot_ctx *ctx, struct tlbot_msg *m, const char *user_id, const char *today)
{
	size_t i;

	for (i = 0; tlbot_commands[i]; i++)
		if (tlbot_commands[i]->about_user &&
		    tlbot_commands[i]->about_user(ctx, m, user_id, today) < 0)
			return -1;
	return 0;
}

static int
show(struct tlbot_ctx *ctx)
{
	const char *user = tlbot_ctx_sender(ctx);
	const char *dflt = tlbot_ctx_default_tz(ctx) ? tlbot_ctx_default_tz(ctx) : "UTC";
	const char *pfx = tlbot_ctx_prefix(ctx);
	struct tlbot_msg m;
	char tz[128], today[11], hint[256];
	int own;

	own = tlbot_user_tz(ctx, user, dflt, tz, sizeof(tz));
	tlbot_tz_date(tz, tlbot_ctx_now(ctx), today);
	tlbot_msg_init(&m);
	tlbot_msg_bold(&m, "Your settings");
	tlbot_msg_br(&m);
	tlbot_msg_textf(&m, "Time zone: %s%s", tz, own ? "" : " (the default)");
	tlbot_msg_br(&m);
	tlbot_msg_textf(&m, "Direct messages: %s", tlbot_ctx_dm_enabled(ctx, user) ? "on" : "off");
	tlbot_msg_br(&m);
	if (about_user(ctx, &m, user, today) != 0) {
		tlbot_msg_release(&m);
		return -1;
	}
	snprintf(hint, sizeof(hint),
	         "Change your zone with `%sme tz Europe/Paris` (or `%sme tz default`).", pfx, pfx);
	tlbot_msg_text_code(&m, hint);
	return tlbot_reply(ctx, &m);
}

static int
me(struct tlbot_ctx *ctx, const struct tlbot_args *args)
{
	if (args->argc == 0)
		return show(ctx);
	if (strcasecmp(args->argv[0], "tz") != 0)
		return tlbot_fail(ctx,
		                  "unknown setting '%s': %sme shows your settings, %sme tz ZONE "
		                  "sets your time zone",
		                  args->argv[0], tlbot_ctx_prefix(ctx), tlbot_ctx_prefix(ctx));
	if (args->argc == 1)
		return show(ctx);
	return set_tz(ctx, args->argv[1]);
}

/* data protection: commands/me_privacy.c */
int me_export_user(struct tlbot_ctx *ctx, const char *user_id, struct tlbot_dp_export *out);
int me_forget_user(struct tlbot_ctx *ctx, const char *user_id, const char *pseudonym,
                   struct tlbot_dp_report *report);

static const struct tlbot_param me_params[] = {
        {TLBOT_TEXT("setting", 0), .mode = TLBOT_OPTIONAL | TLBOT_WORD, .label = "tz",
         .desc = "the setting to change"},
        {TLBOT_TEXT("value", 0), .mode = TLBOT_OPTIONAL | TLBOT_WORD, .label = "ZONE|default",
         .desc = "an IANA time zone, or default"},
        TLBOT_PARAMS_END};

const struct tlbot_cmd tlbot_cmd_me = {
        .name = "me",
        .summary = "your own settings: time zone for stand-up prompts and reminders",
        .help = "Examples: !me, !me tz Europe/Paris, !me tz default",
        .perm = TLBOT_PERM_ANYONE,
        .params = me_params,
        .example = "tz Europe/London",
        .handler = me,
        .schema = &schema,
        .user_tz = user_tz,
        .export_user = me_export_user,
        .forget_user = me_forget_user,
};
