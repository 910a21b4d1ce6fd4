/* Response filters and the chain that runs them (nginx's body filters,
 * haproxy's flt_ops). A route names filter types with their options; at the
 * response head the core makes one filter per spec, asks each whether it
 * takes part, and chains those that do: each filter passes its output to the
 * next, the last one to the client. The core knows no filter by name.
 *
 * Framing is the core's: a filter says which unit it works on, and the chain
 * cuts the body into that unit before the filter sees it.
 *   BYTES   pieces as they come from the upstream (or the stage before);
 *   EVENTS  whole Server-Sent Events, one per call (the chain's framer; an
 *           event over the limit ends the filter's part in the response:
 *           it is told to flush, and from then on bytes bypass it);
 *   BODY    the whole body in one call at its end (the chain holds it, and
 *           the response head waits for it; a body over the limit bypasses
 *           the filter and the head goes out with the body streamed).
 * Whatever a filter cannot rewrite it passes on as it came: nothing is lost,
 * nothing is sent twice. */
#ifndef RELAY_CORE_FILTER_H
#define RELAY_CORE_FILTER_H

#include <stddef.h>
#include <stdint.h>

#include "head.h"
#include "relay/buf.h"
#include "relay/sse.h"

/* Filters in one chain. */
#define RELAY_CHAIN_MAX 6
/* on_head's answer for a response the filter does not apply to. */
#define RELAY_FILTER_SKIP 1

struct relay_exchange_s;
typedef struct relay_filter_s relay_filter_t;
typedef struct relay_chain_s relay_chain_t;

typedef enum { RELAY_UNIT_BYTES = 0, RELAY_UNIT_EVENTS, RELAY_UNIT_BODY } relay_unit_t;

/* How a filter's part in a response ends. */
typedef enum {
  RELAY_END_COMPLETE = 0, /* the body is whole: send what is owed */
  RELAY_END_CUT,          /* the upstream cut it: send what is owed of a stream, then stop */
  RELAY_END_BYPASS        /* the chain goes on without this filter (input over a limit):
                             send what is held, in order, before the raw rest */
} relay_end_t;

typedef enum { RELAY_MEDIA_OTHER = 0, RELAY_MEDIA_JSON, RELAY_MEDIA_SSE } relay_media_t;

/* The response as filters see it when its head is in. A front end's
 * on_response may change status, media (what the filters read the body as)
 * and content_type (set: the client gets this Content-Type, and no
 * Content-Encoding, for a body the filters make anew). */
typedef struct relay_response_s {
  int status;
  const relay_head_t *head;
  relay_media_t media; /* from Content-Type */
  int encoded;         /* a Content-Encoding other than identity */
  const char *content_type;
} relay_response_t;

typedef struct relay_filter_ops_s {
  const char *name;
  /* 0 to take part (f->unit set), RELAY_FILTER_SKIP to stay out of this
   * response (the filter is then disposed), or a negative error. */
  int (*on_head)(relay_filter_t *f, const relay_response_t *r);
  /* BYTES: a piece; BODY: the whole body, once. */
  int (*on_data)(relay_filter_t *f, const char *data, size_t len);
  /* EVENTS: one whole event. */
  int (*on_event)(relay_filter_t *f, const relay_sse_event_t *ev);
  /* Negative: the output is missing a piece; the response is cut. */
  int (*on_end)(relay_filter_t *f, relay_end_t how);
  void (*dispose)(relay_filter_t *f);
} relay_filter_ops_t;

/* What a filter did to a response, for metrics: each filter counts what
 * applies to it (all zero for the others); the core reads the sum of a
 * chain with relay_chain_stats() when the exchange ends. */
typedef struct relay_filter_stats_s {
  uint64_t events_rewritten; /* SSE events (or JSON bodies) whose bytes the filter changed */
  uint64_t reasoning_blocks; /* reasoning blocks found (one per choice per block) */
  uint64_t tool_calls;       /* tool calls the filter made out of text */
} relay_filter_stats_t;

/* The base of every filter; a filter type embeds it first. */
struct relay_filter_s {
  const relay_filter_ops_t *ops;
  struct relay_exchange_s *ex; /* whose response (NULL when driven by a unit test) */
  relay_chain_t *chain;
  unsigned index; /* its stage */
  relay_unit_t unit;
  relay_filter_stats_t stats;
};

/* A kind of filter, as routes name it. opts belong to the route; create
 * makes the per-response filter (NULL when out of memory). */
typedef struct relay_filter_type_s {
  const char *name;
  relay_filter_t *(*create)(const void *opts, struct relay_exchange_s *ex);
  void (*opts_ref)(void *opts);
  void (*opts_unref)(void *opts);
  unsigned flags;
} relay_filter_type_t;

/* The filter reads the body's text: the upstream is asked for an unencoded
 * one (Accept-Encoding: identity). */
#define RELAY_FILTER_READS_BODY 1u

typedef struct relay_filter_spec_s {
  const relay_filter_type_t *type;
  void *opts;
} relay_filter_spec_t;

/* Where the chain's output goes (the client). Negative: it could not be
 * sent, and the response must be cut. */
typedef int (*relay_chain_sink_t)(void *ud, const char *data, size_t len);

typedef struct relay_chain_stage_s {
  relay_chain_t *chain;
  relay_filter_t *f;
  relay_sse_t framer; /* EVENTS */
  relay_buf_t held;   /* BODY */
  int bypassed;
} relay_chain_stage_t;

struct relay_chain_s {
  relay_chain_stage_t stage[RELAY_CHAIN_MAX];
  unsigned n;
  size_t max_event; /* one SSE event held for an EVENTS filter */
  size_t max_body;  /* a body held for a BODY filter */
  relay_chain_sink_t sink;
  void *sink_ud;
  const char *log_name; /* for warnings: the request, e.g. "POST /v1/chat/completions" */
  int failed;           /* a filter could not make the response (before its head): 500 */
  int err;              /* the sink failed: the response is being cut */
  int status;           /* the status the head goes out with (relay_filter_set_status) */
  int ended;            /* the last filter's output is whole (relay_filter_end_response) */
};

void relay_chain_init(relay_chain_t *c, size_t max_event, size_t max_body, relay_chain_sink_t sink, void *sink_ud,
                      const char *log_name);
/* Append a filter whose on_head took part; the chain owns it from now on.
 * 0, RELAY_ETOOMANY or RELAY_ENOMEM (the filter is disposed either way on
 * error). */
int relay_chain_add(relay_chain_t *c, relay_filter_t *f);
/* Does a stage hold the body (so the response head must wait)? */
int relay_chain_holds_body(const relay_chain_t *c);
/* Upstream body bytes into the first stage. Negative: cut the response. */
int relay_chain_feed(relay_chain_t *c, const char *data, size_t len);
/* The upstream body ended (complete) or was cut. Negative: output is
 * missing (cut the response). */
int relay_chain_end(relay_chain_t *c, int complete);
void relay_chain_dispose(relay_chain_t *c);
/* The sum of the stats of the chain's filters (before relay_chain_dispose). */
void relay_chain_stats(const relay_chain_t *c, relay_filter_stats_t *sum);

/* A filter's output, to the next stage or the client. 0, or negative when
 * the output could not be taken (the response is being cut). */
int relay_filter_pass(relay_filter_t *f, const char *data, size_t len);
/* The response cannot be made (a BODY filter whose script failed): the
 * client gets a 500 instead, as long as the head has not gone out. */
void relay_filter_fail(relay_filter_t *f);
/* The status the response head goes out with, when a filter decides it only
 * once it has read the body (a held body: BODY unit). Ignored once the head
 * has gone out, and for statuses without a body (1xx, 204, 205, 304). */
void relay_filter_set_status(relay_filter_t *f, int status);
/* The last filter's output is the whole response (a translation that wrote
 * its terminal event after a failure): the core ends the response to the
 * client now and closes the upstream connection, so that the model stops
 * generating for nobody. Only the last stage may say so; ignored while the
 * head is held. */
void relay_filter_end_response(relay_filter_t *f);

/* The usual test of the rewriting filters: a 2xx JSON or SSE body that is
 * not encoded. */
int relay_response_is_rewritable(const relay_response_t *r);
/* Media type and encoding of a response head. */
void relay_response_classify(relay_response_t *r, int status, const relay_head_t *head);

#endif
