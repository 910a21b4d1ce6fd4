/* One error space for the whole relay, as in libuv: every function that can
 * fail returns 0 (or a count) on success and a negative code on failure, and
 * relay_strerror() names any code. The relay's own codes sit below -5000 so
 * that they never collide with libuv's (negative errno values and its
 * UV__EAI_* / UV__EOF range above -5000), which pass through unchanged: an
 * I/O failure reported by libuv keeps its code all the way up. */
#ifndef RELAY_ERROR_H
#define RELAY_ERROR_H

#define RELAY_ENOMEM (-5001)    /* out of memory, or a size that cannot be represented */
#define RELAY_EINVAL (-5002)    /* invalid argument or rule */
#define RELAY_EJSON (-5003)     /* invalid JSON, or not the shape the caller expects */
#define RELAY_ENOTFOUND (-5004) /* a JSON path that does not exist */
#define RELAY_ETOODEEP (-5005)  /* a path or a document nested too deep */
#define RELAY_ETOOMANY (-5006)  /* more items (rules, choices) than there is room for */
#define RELAY_EOVERLAP (-5007)  /* two edits of one batch touch the same value */
#define RELAY_ETOOBIG (-5008)   /* one item (an SSE event, a head) over its size limit */
#define RELAY_ETOKENS (-5009)   /* more Connection options than the relay tracks */
#define RELAY_ESCRIPT (-5010)   /* a script hook failed */
#define RELAY_ENOSERVER (-5011) /* no server of an upstream can take a request now */

/* A short, static, lower-case description of err: a relay code, a libuv code
 * (when libuv is linked) or a negative errno value. Never NULL. */
const char *relay_strerror(int err);

#endif
