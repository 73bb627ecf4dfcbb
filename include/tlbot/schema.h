/* A schema component: a named, append-only list of SQL migrations whose
 * version is tracked per component in the store, so each command family
 * (and any other module) owns its tables without the store knowing them. */
#ifndef TLBOT_SCHEMA_H
#define TLBOT_SCHEMA_H

struct tlbot_schema {
	const char *component;
	const char *const *migrations; /* NULL-terminated SQL scripts */
};

#endif
