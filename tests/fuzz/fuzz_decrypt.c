/* libFuzzer target: the decrypt path. Each input is a sync-shaped batch
 * (decoded as the transports do) applied with tlbot_router_apply with
 * encryption on, to one in-memory store where a libolm peer (olm_peer.h)
 * already shared a Megolm session in !r:test over Olm. Placeholders let
 * mutated inputs reach past the first checks: a timeline event's
 * content.session_id "SESSION" becomes the peer's session id and its
 * ciphertext "VALID" a fresh valid Megolm message; a to-device event's
 * sender_key "PEER" becomes the peer's key, ciphertext key "BOT" the bot's
 * and body "VALID" a fresh valid Olm message. */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../bot/crypto/internal.h"
#include "../unit/olm_peer.h"
#include "../unit/crypto_fixture.h"
#include "tlbot/config.h"
#include "tlbot/crypto.h"
#include "tlbot/http.h"
#include "tlbot/log.h"
#include "tlbot/router.h"
#include "tlbot/store.h"

#define BOT "@tlbot:test"
#define ROOM "!r:test"

static struct tlbot_config cfg;
static struct tlbot_store st;
static struct tlbot_crypto *crypto;
static struct olm_peer peer;
static int runs;

static void
setup(void)
{
	json_t *batch, *key;
	struct tlbot_router rt;

	tlbot_log_set_level(TLBOT_LOG_ERROR);
	tlbot_config_init(&cfg);
	cfg.user_id = strdup(BOT);
	cfg.pickle_key = strdup("fuzz pickle key");
	cfg.rate_limit_per_min = 0;
	if (tlbot_store_open(&st, ":memory:", tlbot_command_schemas()) != 0)
		abort();
	tlbot_store_room_set(&st, ROOM, "join", NULL);
	tlbot_store_state_put(&st, ROOM, "m.room.encryption", "", "@a:test",
			      "{\"algorithm\":\"m.megolm.v1.aes-sha2\"}");
	crypto = tlbot_crypto_new(&cfg, &st, NULL, BOT, "BOTDEV");
	if (crypto == NULL)
		abort();
	peer_init(&peer, "@a:test", "ADEV");
	/* the peer's device known, an Olm session from it over one of the
	 * bot's published one-time keys */
	cf_connect(crypto, &st, &peer);
	key = peer_room_key(&peer, ROOM);
	batch = json_pack("{s:s, s:{s:[o]}}", "next_batch", "s1", "to_device", "events",
			  peer_to_device(&peer, BOT, tlbot_crypto_curve25519(crypto),
					 tlbot_crypto_ed25519(crypto), "m.room_key", key, NULL, NULL));
	tlbot_router_init(&rt, &cfg, cfg.user_id, &st);
	rt.crypto = crypto;
	if (tlbot_router_apply(&rt, batch, "s0") != 0)
		abort();
	json_decref(batch);
}

static void
teardown(void)
{
	tlbot_crypto_free(crypto);
	peer_free(&peer);
	tlbot_store_close(&st);
	tlbot_config_release(&cfg);
}

/* Fill the placeholders of one batch (see the top). */
static void
fill(json_t *batch)
{
	json_t *rooms = json_object_get(json_object_get(batch, "rooms"), "join"), *room, *ev;
	json_t *tde = json_object_get(json_object_get(batch, "to_device"), "events");
	const char *rid;
	size_t i;

	json_object_foreach(rooms, rid, room) {
		json_t *evs = json_object_get(json_object_get(room, "timeline"), "events");

		json_array_foreach(evs, i, ev) {
			json_t *c = json_object_get(ev, "content");
			const char *ct = json_string_value(json_object_get(c, "ciphertext"));
			const char *sid = json_string_value(json_object_get(c, "session_id"));

			if (sid && strcmp(sid, "SESSION") == 0)
				json_object_set_new(c, "session_id", json_string(peer.sid));
			if (ct && strcmp(ct, "VALID") == 0) {
				json_t *good = peer_room_event(&peer, rid, "$x", "!ping");

				json_object_set(c, "ciphertext",
						json_object_get(json_object_get(good, "content"),
								"ciphertext"));
				json_decref(good);
			}
		}
	}
	json_array_foreach(tde, i, ev) {
		json_t *c = json_object_get(ev, "content"), *ctx = json_object_get(c, "ciphertext");
		const char *sk = json_string_value(json_object_get(c, "sender_key"));
		json_t *mine = json_object_get(ctx, "BOT");

		if (sk && strcmp(sk, "PEER") == 0)
			json_object_set_new(c, "sender_key", json_string(peer.curve));
		if (json_is_object(mine)) {
			const char *body = json_string_value(json_object_get(mine, "body"));

			if (body && strcmp(body, "VALID") == 0) {
				json_t *good = peer_to_device(&peer, BOT, tlbot_crypto_curve25519(crypto),
							      tlbot_crypto_ed25519(crypto), "m.room_key",
							      peer_room_key(&peer, ROOM), NULL, NULL);
				json_t *gm = json_object_get(
					json_object_get(json_object_get(good, "content"), "ciphertext"),
					tlbot_crypto_curve25519(crypto));

				json_object_set(mine, "body", json_object_get(gm, "body"));
				json_object_set(mine, "type", json_object_get(gm, "type"));
				json_decref(good);
			}
			json_object_set(ctx, tlbot_crypto_curve25519(crypto), mine);
			json_object_del(ctx, "BOT");
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tlbot_router rt;
	json_error_t jerr;
	json_t *batch;

	if (runs++ % 2000 == 0) {
		/* bound the store's growth over a long run */
		if (crypto)
			teardown();
		setup();
	}
	batch = tlbot_json_decode((const char *)data, size, &jerr);
	if (batch == NULL)
		return 0;
	fill(batch);
	tlbot_router_init(&rt, &cfg, cfg.user_id, &st);
	rt.crypto = crypto;
	(void)tlbot_router_apply(&rt, batch, "s0");
	json_decref(batch);
	return 0;
}
