/* Reading the source tree for the tests that check rules on the code itself
 * (test_sql_rule.c, test_include_rule.c): the tree's root, a file with its
 * comments blanked, and a walk over the .c/.h files below a folder.
 * Header-only, like tap.h. */
#ifndef TLBOT_SRCTREE_H
#define TLBOT_SRCTREE_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"

/* The file with comments blanked (strings, character literals and newlines
 * kept, so offsets and line numbers stay). Caller frees; NULL on error. */
static char *
srctree_load(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *s;
	long n;
	size_t i;
	int in_str = 0, in_chr = 0;

	if (f == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	s = malloc((size_t)n + 1);
	if (s == NULL || fread(s, 1, (size_t)n, f) != (size_t)n) {
		fclose(f);
		free(s);
		return NULL;
	}
	fclose(f);
	s[n] = '\0';
	for (i = 0; s[i]; i++) {
		if (in_str || in_chr) {
			if (s[i] == '\\' && s[i + 1])
				i++;
			else if ((in_str && s[i] == '"') || (in_chr && s[i] == '\''))
				in_str = in_chr = 0;
		} else if (s[i] == '"') {
			in_str = 1;
		} else if (s[i] == '\'') {
			in_chr = 1;
		} else if (s[i] == '/' && s[i + 1] == '*') {
			for (; s[i] && !(s[i] == '*' && s[i + 1] == '/'); i++)
				if (s[i] != '\n')
					s[i] = ' ';
			if (s[i])
				s[i] = s[i + 1] = ' ';
		} else if (s[i] == '/' && s[i + 1] == '/') {
			for (; s[i] && s[i] != '\n'; i++)
				s[i] = ' ';
			if (!s[i])
				break;
		}
	}
	return s;
}

/* Call check(root, "dir/sub/file.c") for every .c and .h file below dir
 * (relative to root), counting them in *files. */
static void
srctree_walk(const char *root, const char *dir, void (*check)(const char *, const char *),
	     int *files)
{
	char path[4096];
	DIR *d;
	struct dirent *e;

	snprintf(path, sizeof(path), "%s/%s", root, dir);
	d = opendir(path);
	CHECK(d != NULL);
	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		size_t n = strlen(e->d_name);
		char rel[1024];

		if (e->d_name[0] == '.')
			continue;
		snprintf(rel, sizeof(rel), "%s/%s", dir, e->d_name);
		if (n > 2 && (strcmp(e->d_name + n - 2, ".c") == 0 || strcmp(e->d_name + n - 2, ".h") == 0)) {
			check(root, rel);
			(*files)++;
		} else if (e->d_type == DT_DIR) {
			srctree_walk(root, rel, check, files);
		}
	}
	closedir(d);
}

/* The source tree's root, from TLBOT_TEST_DATA (tests/data), else ".". */
static const char *
srctree_root(void)
{
	static char root[4096];
	const char *data = tap_data_path(".");
	char *cut;

	snprintf(root, sizeof(root), "%s", data ? data : "tests/data/.");
	cut = strstr(root, "/tests/data");
	if (cut)
		*cut = '\0';
	else
		snprintf(root, sizeof(root), ".");
	return root;
}

#endif
