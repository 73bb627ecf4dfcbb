/* Command parser: prefix, command family, subcommand, quoted arguments,
 * --flags and mentions. Pure functions, no I/O. */
#ifndef TLBOT_PARSE_H
#define TLBOT_PARSE_H

#include <stddef.h>

#define TLBOT_PARSE_MAX_TOKENS 64
#define TLBOT_PARSE_MAX_BODY 8192 /* longer commands are refused */

struct tlbot_token {
	char *text;  /* owned, unquoted, NUL-terminated (valid UTF-8) */
	int quoted;  /* 1 if any part was quoted */
	size_t bare; /* bytes at the start of text that were typed outside
	              * quotes: a token is a flag only when its "--" is bare,
	              * so "--x" typed in quotes is positional while
	              * --note="a b" is a flag with the value "a b" */
};

/* A tokenised command line. */
struct tlbot_cmdline {
	char prefix[8];      /* the prefix that matched ("!") */
	char *name;          /* command family as typed, lower-cased; owned */
	size_t ntok;         /* tokens after the name */
	struct tlbot_token tok[TLBOT_PARSE_MAX_TOKENS];
};

/* Tokenise body. prefixes is a NULL-terminated list ("!", "/"; NULL means
 * those two; the longest matching prefix wins). Returns 1 if body is a
 * command (out filled; release with tlbot_cmdline_release), 0 if it is not
 * a command (no prefix, or prefix followed by a space/nothing/non-letter:
 * "! hi", "/", "//", "> quote"), -1 on a malformed command with a one-line
 * reason in err (unbalanced quote, too long, too many arguments, invalid
 * UTF-8, control characters other than newline and tab); out is empty
 * unless 1 is returned, so releasing it is always safe.
 *
 * Tokens are split on white space, Unicode spaces included (no-break
 * spaces come with pills and phone keyboards). Quoting: "..." (with \"
 * and \\ escapes), '...', and the typographic quotes phones insert:
 * “...”, ”...”, „...“ and ‘...’. Quoted and unquoted parts join into one
 * token (--note="a b"). A single quote opens only where a word starts
 * (token start, after '=' or after another quoted part) and closes only
 * where a word ends, so apostrophes (it's, don’t) are plain text. Outside
 * quotes \" and \' are literal quotes. Newlines inside quotes are kept. */
int tlbot_cmdline_parse(const char *body, const char *const *prefixes,
			struct tlbot_cmdline *out, char *err, size_t errlen);
void tlbot_cmdline_release(struct tlbot_cmdline *cl);

/* A flag spec is a NULL-terminated list: "mine" (boolean),
 * "region=" (takes a value), "assignee=*" (takes a value, may repeat). */
/* A checked, typed value (see struct tlbot_param in command.h): n for
 * INT, REF, DATE (days since 1970-01-01), DURATION (seconds) and TIME
 * (minutes after midnight); d for NUM. Zero for untyped text. */
struct tlbot_value {
	long long n;
	double d;
};

struct tlbot_flag {
	const char *name;   /* borrowed from the spec entry, so it may end in
	                     * "=" or "=*"; compare with tlbot_args_get/has */
	const char *value;  /* borrowed from the cmdline; NULL for booleans */
	struct tlbot_value v; /* typed value, when checked against a param table */
};

struct tlbot_args {
	size_t argc;                          /* positional arguments */
	const char *argv[TLBOT_PARSE_MAX_TOKENS]; /* borrowed from the cmdline */
	size_t nflags;
	struct tlbot_flag flags[TLBOT_PARSE_MAX_TOKENS];
	struct tlbot_value val[TLBOT_PARSE_MAX_TOKENS]; /* typed value of argv[i] */
};

/* Is token t a --flag (bare "--", or a phone's em/en dash before a
 * letter)? 1 with the flag name in *name and *len (empty for the "--" end
 * marker), else 0. */
int tlbot_token_is_flag(const struct tlbot_token *t, const char **name, size_t *len);

/* Bind the tokens from index first on into positionals and flags per spec.
 * Accepts "--flag value", "--flag=value", "--" (end of flags); an em or
 * en dash followed by a letter ("—mine", what iOS makes of "--mine")
 * counts as "--". A token whose "--" is quoted is positional, and so is
 * "-5". Flag names are case-sensitive. Returns 0, or -1 with a
 * one-line reason in err: unknown flag (naming it), a flag without its
 * value, a value given to a boolean flag, a non-repeatable flag given
 * twice. Borrowed pointers stay valid while cl lives. */
int tlbot_args_bind(const struct tlbot_cmdline *cl, size_t first,
		    const char *const *spec, struct tlbot_args *out,
		    char *err, size_t errlen);
/* The value of flag name (last one given), or NULL when absent or boolean. */
const char *tlbot_args_get(const struct tlbot_args *a, const char *name);
/* 1 if the flag was given (boolean or with value), else 0. */
int tlbot_args_has(const struct tlbot_args *a, const char *name);

/* Is s a syntactically valid Matrix user id (@localpart:server)? Localpart
 * a-z 0-9 . _ = - / + (upper case accepted for historical ids), server name
 * per the spec's grammar (host, IPv4 or [IPv6], optional :port), at most 255
 * bytes in all. */
int tlbot_is_user_id(const char *s);

/* Collect the user ids mentioned in a message: from the m.mentions
 * user_ids (may be NULL; a borrowed jansson array; non-strings and invalid
 * ids ignored), from matrix.to and matrix:u/ pills in formatted_body (may
 * be NULL; percent-decoded) and from plain @user:server ids in body
 * (trailing punctuation stripped). A reply fallback (<mx-reply> in the
 * HTML, leading "> " lines in body) is skipped: it names the replied-to
 * sender, who was not mentioned. Note that clients also put the replied-to
 * sender in m.mentions. Calls fn(user_id, arg) once per distinct id, in
 * that order of sources and of appearance within each; fn may be NULL.
 * At most 256 distinct ids. Returns the number of ids found. */
struct json_t;
size_t tlbot_mentions_collect(const char *body, const char *formatted_body,
			      const struct json_t *mentions_user_ids,
			      void (*fn)(const char *user_id, void *arg), void *arg);

/* Element writes a mention pill as the display name in the plain body and
 * a matrix.to link (or matrix:u/ URI) in formatted_body. Returns a new body (caller frees)
 * where each pill's display name is replaced by its user id, in order, or
 * NULL when there is nothing to replace. */
char *tlbot_pills_to_ids(const char *body, const char *formatted_body);

/* Rich replies (spec: "Fallbacks for rich replies"): the body after the
 * leading "> " quote lines and the blank line that ends them (a pointer
 * into body), and formatted_body without its <mx-reply>...</mx-reply>
 * block (a new string the caller frees, or NULL when there is none). */
const char *tlbot_reply_strip_body(const char *body);
char *tlbot_reply_strip_html(const char *html);

/* Several commands in one message, one per line: when the body starts with
 * a command, the byte offsets where each line that starts with a command
 * (prefix and a letter, after spaces) begins, outside "double quotes".
 * Returns how many (at most max; 0 when the body is not a command). */
size_t tlbot_command_lines(const char *body, const char *const *prefixes, size_t *starts,
			   size_t max);

/* Optimal string alignment distance (Damerau-Levenshtein without editing
 * a substring twice), in bytes, for "did you mean". O(len(a) * len(b)). */
size_t tlbot_edit_distance(const char *a, const char *b);

/* Glob match with '*' and '?' (for allow-lists like "@*:example.gov.uk"):
 * byte-wise, case-sensitive, whole string, no escapes. NULL never matches. */
int tlbot_glob_match(const char *pattern, const char *s);

#endif
