/* libFuzzer target: the batch path. Each input is decoded as a /sync
 * response the way the transports do (tlbot_json_decode) and applied with
 * tlbot_router_apply to one in-memory store with every migration, so
 * hostile events reach the router, the parser and every command family. */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tlbot/command.h"
#include "tlbot/config.h"
#include "tlbot/http.h"
#include "tlbot/log.h"
#include "tlbot/router.h"
#include "tlbot/store.h"

static struct tlbot_config cfg;
static struct tlbot_store st;
static int runs;

static void
setup(void)
{
	tlbot_log_set_level(TLBOT_LOG_ERROR);
	tlbot_config_init(&cfg);
	cfg.user_id = strdup("@tlbot:test");
	cfg.rate_limit_per_min = 0;
	if (tlbot_store_open(&st, ":memory:", tlbot_command_schemas()) != 0)
		abort();
	/* the rooms the seeds talk in are joined */
	tlbot_store_room_set(&st, "!r:test", "join", NULL);
	tlbot_store_room_set(&st, "!dm:test", "join", NULL);
	tlbot_store_dm_set(&st, "@a:test", "!dm:test");
	tlbot_store_state_put(&st, "!r:test", "m.room.power_levels", "", "@a:test",
			      "{\"users\":{\"@a:test\":100}}");
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tlbot_router rt;
	json_error_t jerr;
	json_t *batch;

	if (runs++ % 5000 == 0) {
		/* bound the store's growth over a long run */
		if (st.db)
			tlbot_store_close(&st);
		if (cfg.user_id)
			tlbot_config_release(&cfg);
		setup();
	}
	batch = tlbot_json_decode((const char *)data, size, &jerr);
	if (batch == NULL)
		return 0;
	tlbot_router_init(&rt, &cfg, cfg.user_id, &st);
	/* both paths: a first sync (history) and an incremental one */
	(void)tlbot_router_apply(&rt, batch, (size & 1) ? "s0" : NULL);
	rt.isolate = 1;
	(void)tlbot_router_apply(&rt, batch, "s0");
	(void)tlbot_router_run_jobs(&rt, 1795000000 + (time_t)(size * 3600));
	json_decref(batch);
	return 0;
}
