/* relay_strerror: the relay's own codes, then libuv's, then errno's. */
#include "relay/error.h"

#include <string.h>

#ifdef RELAY_HAVE_UV
#include <uv.h>
#endif

const char *relay_strerror(int err) {
  switch (err) {
    case 0: return "success";
    case RELAY_ENOMEM: return "out of memory";
    case RELAY_EINVAL: return "invalid argument";
    case RELAY_EJSON: return "invalid JSON or unexpected shape";
    case RELAY_ENOTFOUND: return "path not found";
    case RELAY_ETOODEEP: return "path or nesting too deep";
    case RELAY_ETOOMANY: return "too many items";
    case RELAY_EOVERLAP: return "edits overlap";
    case RELAY_ETOOBIG: return "larger than the limit";
    case RELAY_ETOKENS: return "too many Connection options";
    case RELAY_ESCRIPT: return "script error";
    case RELAY_ENOSERVER: return "no upstream server available";
    default: break;
  }
#ifdef RELAY_HAVE_UV
  /* uv_strerror allocates (and never frees) a message for a code it does not
   * know; uv_strerror_r writes into a buffer of this thread's instead. */
  static _Thread_local char buf[128];
  if (err < 0 && err > -5000) return uv_strerror_r(err, buf, sizeof buf);
#else
  if (err < 0 && err > -4096) return strerror(-err);
#endif
  return "unknown error";
}
