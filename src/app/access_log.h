/* The access log: one line per exchange on stderr, as a proxy logger. */
#ifndef RELAY_APP_ACCESS_LOG_H
#define RELAY_APP_ACCESS_LOG_H

#include "exchange.h"

/* A relay_exchange_logger_t (ud unused). */
void relay_access_log(void *ud, const relay_exchange_t *ex);

#endif
