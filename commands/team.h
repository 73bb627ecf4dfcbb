/* Private to the team family (commands/team*.c): a team member, described
 * once by its field table (see record.h). Its key is (room, user). */
#ifndef TLBOT_COMMANDS_TEAM_H
#define TLBOT_COMMANDS_TEAM_H

#include "record.h"

#define TEAM_ROLE_MAX 40

/* A team member's fields (see record.h): member, column, flag, type, max,
 * edit, flags, label. Adding a field is one row here and one migration. */
#define TEAM_MEMBER_FIELDS(X)                                                                      \
	X(room_id, "room_id", "room", R_TEXT, 0, RE_FIXED, REC_KEY | REC_REQUIRED | REC_INTERNAL,   \
	  "room")                                                                                  \
	X(user_id, "user_id", "user", R_USER, 0, RE_FIXED, REC_KEY | REC_REQUIRED | REC_SHOWN,     \
	  "member")                                                                                \
	X(role, "role", "role", R_TEXT, TEAM_ROLE_MAX, RE_EDIT, REC_SHOWN, "role")                 \
	X(from_date, "from_date", "from", R_DATE, 0, RE_EDIT, REC_SHOWN, "from")                   \
	X(until_date, "until_date", "until", R_DATE, 0, RE_EDIT, REC_SHOWN, "until")               \
	X(added_by, "added_by", "added-by", R_USER, 0, RE_FIXED, REC_INTERNAL, "added by")         \
	X(added_at, "added_at", "added-at", R_TIME, 0, RE_FIXED, REC_INTERNAL, "added")

struct team_member {
	TEAM_MEMBER_FIELDS(REC_X_MEMBER)
};

/* The record's description: table team_members, no history (no number). */
extern const struct rec_desc tlbot_team_member_desc;

#endif
