/* The chat-completions response rewrite, as a response filter. */
#ifndef RELAY_CHAT_H
#define RELAY_CHAT_H

struct relay_exchange_s;

/* Attach the rewrite to an exchange whose route asks for it, if the response
 * is one it can rewrite (2xx, unencoded JSON or SSE). Returns 1 if attached. */
int relay_chat_attach(struct relay_exchange_s *ex);

#endif
