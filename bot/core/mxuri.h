/* One reader for links to Matrix users, rooms, aliases and events, as the
 * spec's appendix "URIs" defines them (Matrix 1.2 and later):
 *
 *   https://matrix.to/#/<identifier>[/<event id>][?<query>]
 *     identifier and event id percent-encoded or not (older clients do not
 *     encode), e.g. https://matrix.to/#/%40alice%3Aexample.org,
 *     https://matrix.to/#/!somewhere%3Aexample.org/%24event%3Aexample.org?via=elsewhere.ca
 *     (http:// and any letter case of the scheme and host are accepted)
 *
 *   matrix:[//authority/]<type>/<id without sigil>[/e/<event id without sigil>][?query][#fragment]
 *     type u (user), r (room alias), roomid (room id), e (event, after a
 *     room); the development-era user/room/event are read as u/r/e, as
 *     the spec suggests; e.g. matrix:u/alice:example.org?action=chat,
 *     matrix:roomid/somewhere:example.org/e/event?via=elsewhere.ca
 *
 * Query items: via=<server> (repeatable, kept in order) and action=join or
 * action=chat; other items are ignored. The authority and fragment are
 * reserved by the spec and ignored. Historical group links (+group) are
 * not read.
 *
 * Pure: no I/O, no globals, no allocation that outlives the call. */
#ifndef TLBOT_MXURI_H
#define TLBOT_MXURI_H

#include <stddef.h>

#define TLBOT_MXURI_ID_MAX  255 /* bytes of an identifier, sigil included (spec limit) */
#define TLBOT_MXURI_VIA_MAX 8   /* via servers kept; later ones are ignored */

enum tlbot_mxuri_kind {
	TLBOT_MXURI_USER = 1, /* id is "@localpart:server" */
	TLBOT_MXURI_ROOM,     /* id is "!opaque[:server]" */
	TLBOT_MXURI_ALIAS,    /* id is "#localpart:server" */
};

enum tlbot_mxuri_action {
	TLBOT_MXURI_ACTION_NONE = 0,
	TLBOT_MXURI_ACTION_JOIN,
	TLBOT_MXURI_ACTION_CHAT,
};

struct tlbot_mxuri {
	enum tlbot_mxuri_kind kind;
	char id[TLBOT_MXURI_ID_MAX + 1];       /* decoded, with its sigil */
	char event_id[TLBOT_MXURI_ID_MAX + 1]; /* "$..." for a room permalink, else "" */
	enum tlbot_mxuri_action action;
	size_t n_via;
	char via[TLBOT_MXURI_VIA_MAX][TLBOT_MXURI_ID_MAX + 1]; /* decoded server names */
};

/* Read the len bytes at uri (not necessarily NUL-terminated; no HTML
 * entities: a caller reading an href decodes those first or accepts that
 * "&amp;" splits a query item) into *out. A user id must pass
 * tlbot_is_user_id; a room id needs text after its "!", an alias a ':'
 * with text on both sides, an event id text after its "$"; no identifier
 * may hold a NUL, a space or a control byte once decoded, or exceed
 * TLBOT_MXURI_ID_MAX bytes. Returns 0 when uri is such a link (out
 * filled), -1 when it is not (out undefined). */
int tlbot_mxuri_parse(const char *uri, size_t len, struct tlbot_mxuri *out);

/* Whether id (NUL-terminated, sigil included) has the shape of kind that
 * tlbot_mxuri_parse asks of a link's identifier: 1 or 0. */
int tlbot_mxuri_id_ok(enum tlbot_mxuri_kind kind, const char *id);

#endif
