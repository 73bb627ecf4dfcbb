/* Bound-parameter helpers for command families (see command.h). */
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tlbot/command.h"

sqlite3_stmt *
tlbot_db_prepv(sqlite3 *db, const char *sql, const char *types, va_list ap)
{
	sqlite3_stmt *s;
	int i;

	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
		return NULL;
	for (i = 0; types && types[i]; i++) {
		int rc;

		switch (types[i]) {
		case 'i':
			rc = sqlite3_bind_int64(s, i + 1, va_arg(ap, int64_t));
			break;
		case 'd':
			rc = sqlite3_bind_double(s, i + 1, va_arg(ap, double));
			break;
		default: {
			const char *v = va_arg(ap, const char *);

			rc = v ? sqlite3_bind_text(s, i + 1, v, -1, SQLITE_TRANSIENT)
			       : sqlite3_bind_null(s, i + 1);
			break;
		}
		}
		if (rc != SQLITE_OK) {
			sqlite3_finalize(s);
			return NULL;
		}
	}
	return s;
}

sqlite3_stmt *
tlbot_db_prep(sqlite3 *db, const char *sql, const char *types, ...)
{
	sqlite3_stmt *s;
	va_list ap;

	va_start(ap, types);
	s = tlbot_db_prepv(db, sql, types, ap);
	va_end(ap);
	return s;
}

int
tlbot_db_exec(sqlite3 *db, const char *sql, const char *types, ...)
{
	sqlite3_stmt *s;
	va_list ap;
	int rc;

	va_start(ap, types);
	s = tlbot_db_prepv(db, sql, types, ap);
	va_end(ap);
	if (s == NULL)
		return -1;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		;
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

int
tlbot_db_int(sqlite3 *db, int64_t *out, const char *sql, const char *types, ...)
{
	sqlite3_stmt *s;
	va_list ap;
	int rc;

	*out = 0;
	va_start(ap, types);
	s = tlbot_db_prepv(db, sql, types, ap);
	va_end(ap);
	if (s == NULL)
		return -1;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*out = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? 1 : -1;
}

int
tlbot_db_text(sqlite3 *db, char **out, const char *sql, const char *types, ...)
{
	sqlite3_stmt *s;
	va_list ap;
	int rc;

	*out = NULL;
	va_start(ap, types);
	s = tlbot_db_prepv(db, sql, types, ap);
	va_end(ap);
	if (s == NULL)
		return -1;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL) {
		*out = strdup((const char *)sqlite3_column_text(s, 0));
		if (*out == NULL)
			rc = SQLITE_NOMEM;
	}
	sqlite3_finalize(s);
	return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? 1 : -1;
}

char *
tlbot_db_col_dup(sqlite3_stmt *s, int i)
{
	const unsigned char *t = sqlite3_column_text(s, i);

	return t ? strdup((const char *)t) : NULL;
}
