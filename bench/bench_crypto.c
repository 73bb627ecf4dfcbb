/* bench_crypto: what end-to-end encryption costs the bot.
 *
 *   decrypt   one m.room.encrypted event from a libolm peer, as the
 *             receive side does it (tlbot_crypto_decrypt inside the batch
 *             transaction: load and unpickle the inbound session, decrypt,
 *             the replay check row), µs per message;
 *   encrypt   one outgoing message through tlbot_crypto_prepare_send in a
 *             room whose session is already shared (load, Megolm-encrypt,
 *             persist the ciphertext in the outbox row and the advanced
 *             session in one transaction), µs per message;
 *   store     database growth per 1,000 inbound Megolm sessions and per
 *             1,000 Olm sessions (file size after VACUUM).
 *
 *	bench_crypto [--quick | --smoke] [--dir DIR]
 *
 * Full: 2,000 messages and 1,000 sessions; --quick: 200 and 100; --smoke
 * (bench/run --smoke, what CTest runs): 50 and 50.
 *
 * Prints one JSON object on stdout. A real file database (WAL,
 * synchronous=NORMAL) in DIR (default /tmp).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../bot/crypto/internal.h"
#include "../tests/unit/olm_peer.h"
#include "../tests/unit/crypto_fixture.h"
#include "tlbot/log.h"

#define BOT "@tlbot:bench"
#define ROOM "!room:bench"

static double
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static long long
file_size(const char *path)
{
	struct stat sb;

	return stat(path, &sb) == 0 ? (long long)sb.st_size : -1;
}

static long long
vacuumed_size(struct tlbot_store *st)
{
	tlbot_store_exec(st, "PRAGMA wal_checkpoint(TRUNCATE); VACUUM;");
	return file_size(st->path);
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void
stats(json_t *out, const char *name, double *v, int n)
{
	double sum = 0;
	int i;

	for (i = 0; i < n; i++)
		sum += v[i];
	qsort(v, (size_t)n, sizeof(double), cmp_double);
	json_object_set_new(out, name,
			    json_pack("{s:i, s:f, s:f, s:f}", "n", n, "mean_us", sum / n, "p50_us",
				      v[n / 2], "p99_us", v[(n * 99) / 100]));
}

int
main(int argc, char **argv)
{
	const char *dir = "/tmp";
	int quick = 0, smoke = 0, n, i, nsess;
	char path[512];
	struct tlbot_store st;
	struct tlbot_config cfg;
	struct tlbot_crypto *c;
	struct olm_peer p;
	json_t *out = json_object(), *evs;
	double *t;
	long long before, after;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--quick") == 0)
			quick = 1;
		else if (strcmp(argv[i], "--smoke") == 0)
			smoke = 1;
		else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
			dir = argv[++i];
	}
	n = smoke ? 50 : quick ? 200 : 2000;
	nsess = smoke ? 50 : quick ? 100 : 1000;
	tlbot_log_set_level(TLBOT_LOG_ERROR);
	snprintf(path, sizeof(path), "%s/bench-crypto-%d.db", dir, (int)getpid());
	unlink(path);
	tlbot_config_init(&cfg);
	cfg.pickle_key = strdup("bench pickle key");
	if (tlbot_store_open(&st, path, tlbot_command_schemas()) != 0)
		return 1;
	c = tlbot_crypto_new(&cfg, &st, NULL, BOT, "BOTDEV");
	if (c == NULL)
		return 1;
	t = calloc((size_t)(n > nsess ? n : nsess), sizeof(double));

	/* ---- decrypt */
	peer_init(&p, "@alice:bench", "ALICEDEV");
	cf_connect(c, &st, &p);
	if (cf_give_room_key(c, &st, &p, ROOM, BOT) != 0)
		return 1;
	evs = json_array();
	for (i = 0; i < n; i++) {
		char id[32];

		snprintf(id, sizeof(id), "$ev%d", i);
		json_array_append_new(evs, peer_room_event(&p, ROOM, id, "!ping"));
	}
	/* inside the batch transaction, as the router calls it (the commit is
	 * the batch's, shared by everything else in it) */
	tlbot_store_begin(&st);
	for (i = 0; i < n; i++) {
		json_t *plain = NULL;
		double t0 = now_us();

		if (tlbot_crypto_decrypt(c, &st, ROOM, json_array_get(evs, i), &plain) != 0)
			return 1;
		t[i] = now_us() - t0;
		json_decref(plain);
	}
	tlbot_store_commit(&st);
	stats(out, "decrypt", t, n);
	/* the libolm part alone: unpickle the inbound session, decrypt */
	{
		char *pickle = NULL;

		cr_get1(&st, &pickle, "SELECT pickle FROM crypto_megolm_in LIMIT 1", NULL, NULL, NULL);
		for (i = 0; pickle && i < n; i++) {
			const char *ct = json_string_value(json_object_get(
				json_object_get(json_array_get(evs, i), "content"), "ciphertext"));
			char *copy = strdup(ct), pt[4096];
			double t0 = now_us();
			OlmInboundGroupSession *gs = cr_unpickle_in(c, pickle);
			uint32_t idx;

			olm_group_decrypt(gs, (uint8_t *)copy, strlen(copy), (uint8_t *)pt, sizeof(pt),
					  &idx);
			cr_in_free(gs);
			t[i] = now_us() - t0;
			free(copy);
		}
		free(pickle);
		stats(out, "decrypt_libolm_only", t, n);
	}
	json_decref(evs);

	/* ---- encrypt: a room where the session is shared (only the bot's own
	 * device is a member, so no key has to travel) */
	tlbot_store_state_put(&st, ROOM, "m.room.encryption", "", BOT,
			      "{\"algorithm\":\"m.megolm.v1.aes-sha2\",\"rotation_period_msgs\":1000000}");
	tlbot_store_state_put(&st, ROOM, "m.room.member", BOT, BOT, "{\"membership\":\"join\"}");
	tlbot_store_exec(&st, "INSERT INTO crypto_members_loaded VALUES ('" ROOM "');"
			      "INSERT INTO crypto_users VALUES ('" BOT "', 0);");
	for (i = 0; i < n; i++) {
		struct tlbot_outbox_row row;
		char txn[32];
		double t0;

		snprintf(txn, sizeof(txn), "bench.%d", i);
		tlbot_store_outbox_add(&st, txn, "send", ROOM, NULL, "m.room.message",
				       "{\"msgtype\":\"m.notice\",\"body\":\"pong\",\"m.mentions\":{}}",
				       NULL, 0);
		if (tlbot_store_outbox_next(&st, &row) != 0)
			return 1;
		t0 = now_us();
		if (tlbot_crypto_prepare_send(c, &st, NULL, &row) != 0 ||
		    strcmp(row.event_type, "m.room.encrypted") != 0)
			return 1;
		t[i] = now_us() - t0;
		tlbot_store_outbox_done(&st, row.id, "$sent");
		tlbot_store_outbox_row_release(&row);
	}
	stats(out, "encrypt", t, n);
	peer_free(&p);

	/* ---- store size per 1,000 sessions */
	before = vacuumed_size(&st);
	tlbot_store_begin(&st);
	for (i = 0; i < nsess; i++) {
		struct olm_peer q;
		json_t *k;
		char room[64];

		peer_init(&q, "@bob:bench", "BOBDEV");
		snprintf(room, sizeof(room), "!r%d:bench", i);
		k = peer_room_key(&q, room);
		cr_megolm_add_inbound(c, &st, q.user, q.curve, q.ed, k);
		json_decref(k);
		peer_free(&q);
	}
	tlbot_store_commit(&st);
	after = vacuumed_size(&st);
	json_object_set_new(out, "store_bytes_per_1000_megolm_inbound",
			    json_integer((after - before) * 1000 / nsess));
	before = after;
	for (i = 0; i < nsess; i++) {
		struct olm_peer q;
		char user[64];

		snprintf(user, sizeof(user), "@u%d:bench", i);
		peer_init(&q, user, "DEV");
		cf_connect(c, &st, &q);
		cf_apply_to_device(c, &st, json_pack("[o]", peer_to_device(&q, BOT,
				   tlbot_crypto_curve25519(c), tlbot_crypto_ed25519(c), "m.dummy",
				   json_object(), NULL, NULL)));
		peer_free(&q);
	}
	after = vacuumed_size(&st);
	json_object_set_new(out, "store_bytes_per_1000_olm_sessions",
			    json_integer((after - before) * 1000 / nsess));
	{
		char *text = json_dumps(out, JSON_INDENT(2));

		printf("%s\n", text);
		free(text);
	}
	json_decref(out);
	free(t);
	tlbot_crypto_free(c);
	tlbot_store_close(&st);
	tlbot_config_release(&cfg);
	unlink(path);
	{
		char p2[600];

		snprintf(p2, sizeof(p2), "%s-wal", path);
		unlink(p2);
		snprintf(p2, sizeof(p2), "%s-shm", path);
		unlink(p2);
	}
	return 0;
}
