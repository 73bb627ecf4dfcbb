/* !ping: is the bot alive, and how late is it? */
#include <stdlib.h>

#include "tlbot/command.h"

static int
ping(struct tlbot_ctx *ctx, const struct tlbot_args *args)
{
	long lag = (long)(tlbot_ctx_now(ctx) - tlbot_ctx_event_time(ctx));

	if (lag > 5)
		return tlbot_replyf(ctx, "pong (your message reached me %lds after you sent it)", lag);
	return tlbot_replyf(ctx, "pong");
}

const struct tlbot_cmd tlbot_cmd_ping = {
	.name = "ping",
	.summary = "check that the bot is alive",
	.help = "Answers \"pong\". If the message took long to reach the bot, says how long.",
	.perm = TLBOT_PERM_ANYONE,
	.handler = ping,
};
