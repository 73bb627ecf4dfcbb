/* UK bank holidays from the GOV.UK feed (https://www.gov.uk/bank-holidays.json,
 * public sector information licensed under the Open Government Licence
 * v3.0). Divisions: "england-and-wales", "scotland", "northern-ireland".
 *
 * Lookups read, in order, the first of these that exists and is valid:
 * the configured override (config bank_holidays_file), the cached copy
 * refreshed from GOV.UK (tlbot_holidays_set_cache_path), the copy shipped
 * with tlbot (config/bank-holidays.json, installed under the data
 * directory). Parsed files are kept in memory and re-read when they change
 * on disk. Thread-safe. Lookups never touch the network. */
#ifndef TLBOT_HOLIDAYS_H
#define TLBOT_HOLIDAYS_H

#include <stddef.h>

#define TLBOT_HOLIDAYS_URL "https://www.gov.uk/bank-holidays.json"

/* 1 if division names a GOV.UK division, else 0. */
int tlbot_holidays_division_valid(const char *division);

/* Where the refreshed copy lives (e.g. next to the database), or NULL for
 * none. The string is copied. */
void tlbot_holidays_set_cache_path(const char *path);

/* Path of the copy shipped with tlbot, or NULL when none is found.
 * Static storage. */
const char *tlbot_holidays_shipped_path(void);

/* Is date (YYYY-MM-DD) a bank holiday in division? override_path is the
 * configured override or NULL. Returns 1 (and the holiday's name in title,
 * when title is non-NULL), 0 if not, -1 when no valid feed file is
 * available or the arguments are invalid. */
int tlbot_holidays_check(const char *override_path, const char *division, const char *date,
                         char *title, size_t titlelen);

/* The next bank holiday in division on or after date: 0 and its date in
 * out (11 bytes) and name in title; 1 if none in the data; -1 error. */
int tlbot_holidays_next(const char *override_path, const char *division, const char *date,
                        char out[11], char *title, size_t titlelen);

/* The path of the file lookups use now (borrowed until the next call from
 * any thread; copy it), or NULL. */
const char *tlbot_holidays_source(const char *override_path);

/* Check that text (len bytes) is a feed document with the three
 * divisions, each with a list of well-formed events. 0 or -1. */
int tlbot_holidays_validate(const char *text, size_t len);

/* Validate text and atomically replace dest_path with it (temporary file
 * in the same directory, fsync, rename). 0, or -1 (dest untouched). */
int tlbot_holidays_install(const char *dest_path, const char *text, size_t len);

/* Fetch TLBOT_HOLIDAYS_URL (libcurl, TLS verified, 10 s timeout, size
 * capped), validate it and install it at dest_path. Call it from the
 * worker, not from command handlers. Returns 0, or -1 (logged; dest
 * untouched). */
int tlbot_holidays_refresh(const char *dest_path);

#endif
