#include "listen.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

/* One place that turns a configured address into a bound socket, so the
 * proxy port and the admin port accept the same address forms and report
 * the same errors. */
int relay_listen_socket(const char *addr, int port, int reuseport, const char *addr_setting, const char *label,
                        char *err, size_t errlen) {
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  int family = strchr(addr, ':') ? AF_INET6 : AF_INET;
  int rc = family == AF_INET6 ? uv_ip6_addr(addr, port, (struct sockaddr_in6 *)&ss)
                              : uv_ip4_addr(addr, port, (struct sockaddr_in *)&ss);
  if (rc) {
    snprintf(err, errlen, "%s '%s' is not an IP address", addr_setting, addr);
    return -1;
  }
  int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    snprintf(err, errlen, "socket: %s", strerror(errno));
    return -1;
  }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (reuseport) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  socklen_t len = family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
  if (bind(fd, (struct sockaddr *)&ss, len) != 0) {
    snprintf(err, errlen, "cannot listen on %s%s:%d: %s", label, addr, port, strerror(errno));
    close(fd);
    return -1;
  }
  return fd;
}
