/* Outgoing message builder: a plain `body`, an HTML `formatted_body` and the
 * `m.mentions` user ids, built together so they never disagree. User text
 * goes in through tlbot_msg_text(), which escapes it for HTML. */
#ifndef TLBOT_MSG_H
#define TLBOT_MSG_H

#include <stddef.h>

#include "tlbot/buf.h"

#define TLBOT_MSG_MAX (60 * 1024) /* Matrix events are capped at 64 KiB */
#define TLBOT_MSG_MAX_MENTIONS 64

struct tlbot_msg {
	struct tlbot_buf plain;
	struct tlbot_buf html;
	size_t nmentions;
	char *mentions[TLBOT_MSG_MAX_MENTIONS]; /* owned, distinct */
	int room_mention;                       /* @room */
	int failed;                             /* an append overflowed */
	int open_p;                             /* text after a list sits in an open <p> */
};

void tlbot_msg_init(struct tlbot_msg *m);
void tlbot_msg_release(struct tlbot_msg *m);

/* Text for both parts; escaped in HTML, newlines become <br/>. */
void tlbot_msg_text(struct tlbot_msg *m, const char *s);
void tlbot_msg_textf(struct tlbot_msg *m, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Bot text where `backticked` spans are commands: <code> in the HTML, the
 * plain body without the backticks. */
void tlbot_msg_text_code(struct tlbot_msg *m, const char *s);
/* Raw HTML only (trusted markup written by the bot, never user text).
 * "<ul>" right after "</ul>" continues that list; a block after a line
 * break drops the break. */
void tlbot_msg_html(struct tlbot_msg *m, const char *html);
/* User text escaped into the HTML only (e.g. table cells whose plain
 * form is written separately with tlbot_msg_plain). */
void tlbot_msg_html_text(struct tlbot_msg *m, const char *s);
/* Plain only (e.g. list bullets the HTML renders with <li>). */
void tlbot_msg_plain(struct tlbot_msg *m, const char *s);
/* Text in <b>, <i> or <code>: the user text is escaped. */
void tlbot_msg_bold(struct tlbot_msg *m, const char *s);
void tlbot_msg_italic(struct tlbot_msg *m, const char *s);
void tlbot_msg_code(struct tlbot_msg *m, const char *s);
/* A mention: the user id in the body, a matrix.to pill in the HTML, and the
 * id added to m.mentions.user_ids (so the person is notified). */
void tlbot_msg_mention(struct tlbot_msg *m, const char *user_id);
/* A user's name shown as a pill WITHOUT notifying them. */
void tlbot_msg_user(struct tlbot_msg *m, const char *user_id);
/* A link: label text, href (escaped), optional title shown on hover. */
void tlbot_msg_link(struct tlbot_msg *m, const char *label, const char *href,
		    const char *title);
/* Newline in body, <br/> in HTML (none right after a block: </ul>, </li>). */
void tlbot_msg_br(struct tlbot_msg *m);
/* A line break before what follows, in the HTML only where it is needed:
 * not at the start, and not right after a block (</ul>, </ol>, </li>,
 * </p>, </pre>, </table>), where <br/> would open an empty line. The
 * plain body always gets its newline (except at the start). */
void tlbot_msg_nl(struct tlbot_msg *m);

/* Display names for pills: fn writes user_id's display name into out and
 * returns 0, or returns -1 to show the id. Set per thread by the context a
 * command or job runs in (tlbot_ctx_init); NULL to stop. */
#define TLBOT_MSG_NAME_MAX 128
typedef int (*tlbot_msg_namer_fn)(void *arg, const char *user_id, char *out, size_t outlen);
void tlbot_msg_set_namer(tlbot_msg_namer_fn fn, void *arg);
void *tlbot_msg_namer_arg(void);

/* Build the event content (msgtype, body, format, formatted_body,
 * m.mentions) as a JSON string. msgtype is "m.notice" or "m.text".
 * Extra relation fields are added by the caller's layer. Returns a new
 * string (caller frees), or NULL if the message overflowed or OOM. */
char *tlbot_msg_content_json(const struct tlbot_msg *m, const char *msgtype);

#endif
