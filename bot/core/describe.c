/* MSC4391 command descriptions from the parameter tables, and structured
 * invocations back into command lines. See include/tlbot/describe.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tlbot/args.h"
#include "tlbot/ctx.h"
#include "tlbot/describe.h"
#include "tlbot/log.h"
#include "tlbot/sha256.h"

static json_t *
text_block(const char *s)
{
	return json_pack("{s:[{s:s}]}", "m.text", "body", s ? s : "");
}

static json_t *
primitive(const char *type)
{
	return json_pack("{s:s, s:s}", "schema_type", "primitive", "type", type);
}

/* The MSC4391 schema of one value of p. */
static json_t *
value_schema(const struct tlbot_param *p)
{
	json_t *u, *vars;
	const char *ch;

	switch (p->type) {
	case TLBOT_P_BOOL: return primitive("boolean");
	case TLBOT_P_INT: return primitive("integer");
	case TLBOT_P_USER: return primitive("user_id");
	case TLBOT_P_ROOM:
		/* MSC4391's room reference type, or its room_alias string */
		if (p->choices && strcmp(p->choices, "!") == 0)
			return primitive("room_id");
		return json_pack("{s:s, s:[o,o]}", "schema_type", "union", "variants",
				 primitive("room_id"), primitive("room_alias"));
	case TLBOT_P_ENUM:
		vars = json_array();
		for (ch = p->choices; ch && *ch;) {
			const char *bar = strchr(ch, '|');
			size_t n = bar ? (size_t)(bar - ch) : strlen(ch);

			json_array_append_new(vars, json_pack("{s:s, s:s%, s:s}", "schema_type", "literal",
							      "value", ch, n, "literal_type", "string"));
			ch = bar ? bar + 1 : NULL;
		}
		u = json_pack("{s:s, s:o}", "schema_type", "union", "variants", vars);
		return u;
	default: return primitive("string");
	}
}

json_t *
tlbot_describe_command(const struct tlbot_cmd *c, const struct tlbot_subcmd *s)
{
	const struct tlbot_param *p, *params = s ? s->params : c->params, *rest = NULL;
	json_t *out, *list = json_array();
	char command[128];

	if (list == NULL)
		return NULL;
	snprintf(command, sizeof(command), "%s%s%s", c->name, s ? " " : "", s ? s->name : "");
	for (p = params; p && p->name; p++) {
		int flag = tlbot_param_is_flag(p);
		const char *key = flag ? p->name + 2 : p->name;
		char label[160];
		json_t *schema = value_schema(p), *one;

		if (p->mode & TLBOT_REPEAT)
			schema = json_pack("{s:s, s:o}", "schema_type", "array", "items", schema);
		tlbot_param_label(p, label, sizeof(label));
		one = json_pack("{s:s, s:o, s:o}", "key", key, "schema", schema, "description",
				text_block(p->desc ? p->desc : label));
		if (flag || (p->mode & TLBOT_OPTIONAL))
			json_object_set_new(one, "optional", json_true());
		json_array_append_new(list, one);
		if (!flag)
			rest = p;
	}
	out = json_pack("{s:s, s:o, s:o}", "command", command, "parameters", list, "description",
			text_block(s ? s->summary : c->summary));
	/* the parameter that takes the rest of the line unquoted (the
	 * extension gomuks and mautrix-go read) */
	if (out && rest && rest->type == TLBOT_P_TEXT && !(rest->mode & (TLBOT_WORD | TLBOT_REPEAT)))
		json_object_set_new(out, "fi.mau.tail_parameter", json_string(rest->name));
	return out;
}

/* May the bot send state of type in room? From m.room.power_levels:
 * events[type], else state_default (50; 0 without a power levels event). */
static int
may_send(struct tlbot_ctx *ctx, const char *room_id, const char *type)
{
	char *pl = NULL;
	json_t *j = NULL, *v;
	json_error_t jerr;
	long long need = 0;
	int rc;

	rc = tlbot_store_state_get(ctx->st, room_id, "m.room.power_levels", "", &pl);
	if (rc < 0)
		return -1;
	if (rc == 0 && pl && (j = json_loads(pl, 0, &jerr)) != NULL) {
		need = 50;
		v = json_object_get(json_object_get(j, "events"), type);
		if (json_is_integer(v))
			need = json_integer_value(v);
		else if (json_is_integer(json_object_get(j, "state_default")))
			need = json_integer_value(json_object_get(j, "state_default"));
	}
	json_decref(j);
	free(pl);
	return tlbot_ctx_power(ctx, room_id, ctx->bot_user) >= need;
}

static int
enqueue(struct tlbot_store *st, const char *room_id, const char *type, const char *key,
	const char *content)
{
	char txn[160], hash[TLBOT_SHA256_B64_LEN], what[1200];

	snprintf(what, sizeof(what), "%s\n%s\n%s\n", room_id, type, key);
	tlbot_sha256_b64_2(what, content, hash);
	snprintf(txn, sizeof(txn), "tlbot.desc.%s", hash);
	return tlbot_store_outbox_add(st, txn, "state", room_id, key, type, content, NULL, 0);
}

/* Is cmd ("challenge new", "ping") a command of the table today? */
static int
is_current_command(const char *cmd)
{
	const struct tlbot_subcmd *sub;
	size_t i, n;

	for (i = 0; tlbot_commands[i]; i++) {
		const struct tlbot_cmd *c = tlbot_commands[i];

		n = strlen(c->name);
		if (strcmp(cmd, c->name) == 0 && c->subcmds == NULL)
			return 1;
		for (sub = c->subcmds; sub && sub->name; sub++)
			if (strncmp(cmd, c->name, n) == 0 && cmd[n] == ' ' &&
			    strcmp(cmd + n + 1, sub->name) == 0)
				return 1;
	}
	return 0;
}

/* One type: publish what differs, empty what is gone. */
static int
describe_type(struct tlbot_ctx *ctx, const char *room_id, const char *type, int *queued)
{
	struct tlbot_store *st = ctx->st;
	size_t i;
	int rc = 0;

	for (i = 0; tlbot_commands[i] && rc == 0; i++) {
		const struct tlbot_cmd *c = tlbot_commands[i];
		const struct tlbot_subcmd *sub = c->subcmds;

		do {
			json_t *want = tlbot_describe_command(c, sub), *have = NULL;
			char key[TLBOT_SHA256_B64_LEN], *stored = NULL, *text;
			json_error_t jerr;

			if (want == NULL)
				return -1;
			tlbot_sha256_b64_2(json_string_value(json_object_get(want, "command")),
					   ctx->bot_user, key);
			rc = tlbot_store_state_get(st, room_id, type, key, &stored);
			if (rc == 0 && stored)
				have = json_loads(stored, 0, &jerr);
			if (rc >= 0 && !(have && json_equal(have, want))) {
				text = json_dumps(want, JSON_COMPACT | JSON_SORT_KEYS);
				rc = text ? enqueue(st, room_id, type, key, text) : -1;
				free(text);
				(*queued)++;
			} else if (rc > 0) {
				rc = 0;
			}
			if (rc > 0)
				rc = 0;
			json_decref(have);
			json_decref(want);
			free(stored);
		} while (rc == 0 && sub && (++sub)->name);
	}
	if (rc != 0)
		return -1;
	/* descriptions the bot published for commands that are gone */
	{
		struct tlbot_db_rows q;
		int step;

		if (tlbot_db_query(ctx, &q,
				   "SELECT state_key, content FROM room_state WHERE room_id = ? AND"
				   " type = ? AND sender = ? AND content != '{}'",
				   "ttt", room_id, type, ctx->bot_user) != 0)
			return -1;
		while (rc == 0 && (step = tlbot_db_next(&q)) > 0) {
			const char *key = tlbot_db_col_text(&q, 0), *content = tlbot_db_col_text(&q, 1);
			json_t *j;
			json_error_t jerr;
			const char *cmd;
			int current = 0;

			if (key == NULL || content == NULL)
				continue;
			j = json_loads(content, 0, &jerr);
			cmd = json_string_value(json_object_get(j, "command"));
			current = cmd && is_current_command(cmd);
			json_decref(j);
			if (!current) {
				rc = enqueue(st, room_id, type, key, "{}");
				(*queued)++;
			}
		}
		tlbot_db_done(&q);
		if (step < 0)
			rc = -1;
	}
	return rc;
}

int
tlbot_describe_room(const struct tlbot_config *cfg, struct tlbot_store *st, const char *bot_user,
		    const char *room_id)
{
	static const char *const types[] = { TLBOT_MSC4391_TYPE, TLBOT_MSC4391_STABLE_TYPE };
	struct tlbot_ctx ctx;
	size_t t;
	int rc = 0, queued = 0;

	tlbot_ctx_init(&ctx, cfg, st, bot_user);
	for (t = 0; t < 2 && rc == 0; t++) {
		int ok = may_send(&ctx, room_id, types[t]);

		if (ok < 0)
			rc = -1;
		else if (ok == 0)
			log_debug("room %s: no power to send %s: command descriptions skipped", room_id,
				  types[t]);
		else
			rc = describe_type(&ctx, room_id, types[t], &queued);
	}
	tlbot_ctx_release(&ctx);
	if (rc == 0 && queued)
		log_info("room %s: publishing %d command description(s)", room_id, queued);
	return rc;
}

/* ---- structured invocations ---- */

/* Append v as one quoted token. */
static void
quoted(struct tlbot_buf *b, const char *v)
{
	tlbot_buf_adds(b, " \"");
	for (; *v; v++) {
		if (*v == '"' || *v == '\\')
			tlbot_buf_addc(b, '\\');
		tlbot_buf_addc(b, *v);
	}
	tlbot_buf_addc(b, '"');
}

/* Append one argument value; 0, or -1 when its type is not one we take.
 * A room reference (MSC4391 type room_id) is an object whose room_id (or
 * "id", as the proposal's example writes it) we take; its via is dropped,
 * as the command line has no place for it. */
static int
value(struct tlbot_buf *b, const json_t *v)
{
	char num[32];
	const json_t *room;

	if (json_is_object(v)) {
		room = json_object_get(v, "room_id");
		if (room == NULL)
			room = json_object_get(v, "id");
		if (!json_is_string(room))
			return -1;
		quoted(b, json_string_value(room));
	} else if (json_is_string(v)) {
		quoted(b, json_string_value(v));
	} else if (json_is_integer(v)) {
		snprintf(num, sizeof(num), " %lld", (long long)json_integer_value(v));
		tlbot_buf_adds(b, num);
	} else if (json_is_boolean(v)) {
		tlbot_buf_adds(b, json_is_true(v) ? " true" : " false");
	} else {
		return -1;
	}
	return 0;
}

/* Is the message for bot_user: no m.mentions list, or one naming it? */
static int
addressed_to(const json_t *content, const char *bot_user)
{
	const json_t *mentions = json_object_get(json_object_get(content, "m.mentions"), "user_ids");
	size_t i;

	if (!json_is_array(mentions))
		return 1;
	for (i = 0; i < json_array_size(mentions); i++)
		if (json_is_string(json_array_get(mentions, i)) &&
		    strcmp(json_string_value(json_array_get(mentions, i)), bot_user) == 0)
			return 1;
	return 0;
}

/* Write the positional arguments of params found in args, in order, to
 * b. 0, or -1 with *key the one whose value has a type not taken. */
static int
write_positionals(struct tlbot_buf *b, const struct tlbot_param *params, const json_t *args,
		  const char **key)
{
	const struct tlbot_param *p;
	const json_t *v;
	size_t i;

	for (p = params; p && p->name; p++) {
		if (tlbot_param_is_flag(p))
			continue;
		*key = p->name;
		v = json_object_get(args, p->name);
		if (v == NULL)
			break; /* later ones cannot be placed; dispatch says what is missing */
		if (json_is_array(v)) {
			for (i = 0; i < json_array_size(v); i++)
				if (value(b, json_array_get(v, i)) != 0)
					return -1;
		} else if (value(b, v) != 0) {
			return -1;
		}
	}
	return 0;
}

/* Write one flag of args (key, v) as p declares it. 0 or -1. */
static int
write_flag(struct tlbot_buf *b, const struct tlbot_param *p, const char *key, const json_t *v)
{
	size_t i;

	if (p->type == TLBOT_P_BOOL) {
		if (json_is_true(v))
			tlbot_buf_printf(b, " --%s", key);
	} else if (json_is_array(v)) {
		for (i = 0; i < json_array_size(v); i++) {
			tlbot_buf_printf(b, " --%s", key);
			if (value(b, json_array_get(v, i)) != 0)
				return -1;
		}
	} else if (!json_is_null(v)) {
		tlbot_buf_printf(b, " --%s", key);
		if (value(b, v) != 0)
			return -1;
	}
	return 0;
}

/* Write the flags in args to b; an argument params does not know is
 * written as a flag, so that dispatch refuses it with the accepted flags.
 * 0, or -1 with *key the one whose value has a type not taken. */
static int
write_flags(struct tlbot_buf *b, const struct tlbot_param *params, const json_t *args,
	    const char **key)
{
	const struct tlbot_param *p;
	const char *k;
	json_t *v;

	json_object_foreach((json_t *)args, k, v) {
		int known = 0;

		*key = k;
		for (p = params; p && p->name; p++) {
			if (!tlbot_param_is_flag(p)) {
				if (strcmp(p->name, k) == 0)
					known = 1;
				continue;
			}
			if (strcmp(p->name + 2, k) != 0)
				continue;
			known = 1;
			if (write_flag(b, p, k, v) != 0)
				return -1;
		}
		if (!known)
			tlbot_buf_printf(b, " --%.40s", k);
	}
	return 0;
}

int
tlbot_structured_command(const json_t *content, const char *bot_user, const char *prefix,
			 char **text, char *err, size_t errlen)
{
	const json_t *inv = json_object_get(content, TLBOT_MSC4391_INVOKE), *args;
	const struct tlbot_cmd *c;
	const struct tlbot_subcmd *s = NULL;
	const struct tlbot_param *params;
	const char *command, *sp, *key = NULL;
	struct tlbot_buf b;
	char family[64];

	*text = NULL;
	if (inv == NULL)
		inv = json_object_get(content, TLBOT_MSC4391_STABLE_INVOKE);
	if (!json_is_object(inv))
		return 0;
	if (!addressed_to(content, bot_user))
		return 0; /* to another bot */
	command = json_string_value(json_object_get(inv, "command"));
	args = json_object_get(inv, "arguments");
	if (command == NULL || (args && !json_is_object(args))) {
		snprintf(err, errlen, "a structured command needs \"command\" and an \"arguments\" object");
		return -1;
	}
	sp = strchr(command, ' ');
	snprintf(family, sizeof(family), "%.*s", (int)(sp ? (size_t)(sp - command) : strlen(command)),
		 command);
	c = tlbot_command_find(family);
	if (c == NULL) {
		snprintf(err, errlen, "unknown command %s%.60s: %shelp lists all commands", prefix,
			 command, prefix);
		return -1;
	}
	if (c->subcmds && sp) {
		for (s = c->subcmds; s->name; s++)
			if (strcasecmp(s->name, sp + 1) == 0)
				break;
		if (s->name == NULL) {
			snprintf(err, errlen, "unknown subcommand %s%s %.60s", prefix, c->name, sp + 1);
			return -1;
		}
	}
	params = s ? s->params : c->params;
	tlbot_buf_init(&b, 16384);
	tlbot_buf_printf(&b, "%s%s%s%s", prefix, c->name, s ? " " : "", s ? s->name : "");
	/* positionals in order, then flags */
	if (write_positionals(&b, params, args, &key) != 0 || write_flags(&b, params, args, &key) != 0)
		goto bad;
	*text = tlbot_buf_detach(&b);
	tlbot_buf_release(&b);
	if (*text == NULL) {
		snprintf(err, errlen, "the structured command is too long");
		return -1;
	}
	return 1;
bad:
	tlbot_buf_release(&b);
	snprintf(err, errlen, "argument '%.40s' of %s has a value of a type I do not take", key ? key : "?",
		 command);
	return -1;
}
