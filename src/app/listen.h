/* The listening sockets of the proxy's workers and of the admin port. */
#ifndef RELAY_APP_LISTEN_H
#define RELAY_APP_LISTEN_H

#include <stddef.h>

/* A TCP socket bound to addr:port (an IPv4 or IPv6 literal) with
 * SO_REUSEADDR, and SO_REUSEPORT when reuseport is set (one socket per
 * worker on one port); not yet listening. On failure -1, with err naming
 * addr_setting (the setting the address came from) or label (what the port
 * is for, "" for the proxy port). */
int relay_listen_socket(const char *addr, int port, int reuseport, const char *addr_setting, const char *label,
                        char *err, size_t errlen);

#endif
