/* The filter chain: feeds each stage in its unit, moves output down the
 * chain, and takes a stage out of the way when its input goes over a limit.
 * See filter.h. */
#include "filter.h"

#include <string.h>
#include <strings.h>

#include "log.h"

static int stage_input(relay_chain_t *c, unsigned i, const char *data, size_t len);

void relay_chain_init(relay_chain_t *c, size_t max_event, size_t max_body, relay_chain_sink_t sink, void *sink_ud,
                      const char *log_name) {
  memset(c, 0, sizeof *c);
  c->max_event = max_event;
  c->max_body = max_body;
  c->sink = sink;
  c->sink_ud = sink_ud;
  c->log_name = log_name ? log_name : "-";
}

int relay_chain_add(relay_chain_t *c, relay_filter_t *f) {
  if (c->n == RELAY_CHAIN_MAX) {
    f->ops->dispose(f);
    return RELAY_ETOOMANY;
  }
  relay_chain_stage_t *st = &c->stage[c->n];
  memset(st, 0, sizeof *st);
  st->chain = c;
  st->f = f;
  f->chain = c;
  f->index = c->n;
  /* The framer allocates nothing until an event is cut by a read's end. */
  if (f->unit == RELAY_UNIT_EVENTS) relay_sse_init(&st->framer, c->max_event);
  c->n++;
  return 0;
}

int relay_chain_holds_body(const relay_chain_t *c) {
  for (unsigned i = 0; i < c->n; i++)
    if (c->stage[i].f->unit == RELAY_UNIT_BODY && !c->stage[i].bypassed) return 1;
  return 0;
}

/* Past the last stage: the client. A failure is kept, so every stage after
 * it sees the same answer and nothing follows the gap. */
static int chain_out(relay_chain_t *c, const char *data, size_t len) {
  if (c->err) return c->err;
  if (len == 0) return 0;
  int rc = c->sink(c->sink_ud, data, len);
  if (rc < 0) c->err = rc;
  return rc < 0 ? rc : 0;
}

int relay_filter_pass(relay_filter_t *f, const char *data, size_t len) {
  return stage_input(f->chain, f->index + 1, data, len);
}

void relay_filter_fail(relay_filter_t *f) { f->chain->failed = 1; }

/* The response has a body: a status that allows none (1xx, 204, 205, 304)
 * would frame it wrongly, so it is ignored. */
void relay_filter_set_status(relay_filter_t *f, int status) {
  if (!f->chain || status < 200 || status > 599 || status == 204 || status == 205 || status == 304) return;
  f->chain->status = status;
}

void relay_filter_end_response(relay_filter_t *f) {
  if (f->chain && f->index + 1 == f->chain->n) f->chain->ended = 1;
}

/* The stage's filter steps aside for the rest of the response: it sends
 * what it holds first (it came before), then the bytes it had not seen. */
static int stage_bypass(relay_chain_t *c, unsigned i, int why, const char *rest, size_t rest_len, const char *data,
                        size_t len) {
  relay_chain_stage_t *st = &c->stage[i];
  relay_filter_t *f = st->f;
  relay_log_warn("%s: the %s filter cannot take the rest of this response (%s); passing it through", c->log_name,
                 f->ops->name, relay_strerror(why));
  st->bypassed = 1;
  int rc = f->ops->on_end(f, RELAY_END_BYPASS);
  if (rc == 0) rc = stage_input(c, i + 1, rest, rest_len);
  if (rc == 0) rc = stage_input(c, i + 1, data, len);
  relay_sse_dispose(&st->framer);
  relay_buf_dispose(&st->held);
  return rc;
}

static void stage_event_cb(void *ud, const relay_sse_event_t *ev) {
  relay_chain_stage_t *st = ud;
  if (st->chain->err) return; /* the response is being cut: nothing goes after a gap */
  st->f->ops->on_event(st->f, ev);
}

/* An EVENTS stage: its framer delivers whole events; one over the limit (or
 * no memory to hold it) takes the filter out of the way, losing nothing:
 * the framer's rest plus data[used..] is exactly what it did not deliver. */
static int stage_events(relay_chain_t *c, unsigned i, const char *data, size_t len) {
  relay_chain_stage_t *st = &c->stage[i];
  size_t used;
  int rc = relay_sse_feed(&st->framer, data, len, stage_event_cb, st, &used);
  if (c->err) return c->err;
  if (rc == 0) return 0;
  const char *rest;
  size_t rest_len;
  relay_sse_finish(&st->framer, &rest, &rest_len);
  return stage_bypass(c, i, rc, rest, rest_len, data + used, len - used);
}

/* A BODY stage: the body is held to the limit; a bigger one bypasses the
 * filter, the part held so far first. */
static int stage_body(relay_chain_t *c, unsigned i, const char *data, size_t len) {
  relay_chain_stage_t *st = &c->stage[i];
  if (st->held.len + len <= c->max_body) {
    if (relay_buf_append(&st->held, data, len) == 0) return 0;
    return stage_bypass(c, i, RELAY_ENOMEM, st->held.data, st->held.len, data, len);
  }
  return stage_bypass(c, i, RELAY_ETOOBIG, st->held.data, st->held.len, data, len);
}

static int stage_input(relay_chain_t *c, unsigned i, const char *data, size_t len) {
  if (c->err) return c->err;
  if (i >= c->n) return chain_out(c, data, len);
  if (len == 0) return 0;
  relay_chain_stage_t *st = &c->stage[i];
  if (st->bypassed) return stage_input(c, i + 1, data, len);
  switch (st->f->unit) {
    case RELAY_UNIT_EVENTS: return stage_events(c, i, data, len);
    case RELAY_UNIT_BODY: return stage_body(c, i, data, len);
    default: {
      int rc = st->f->ops->on_data(st->f, data, len);
      return c->err ? c->err : rc;
    }
  }
}

int relay_chain_feed(relay_chain_t *c, const char *data, size_t len) { return stage_input(c, 0, data, len); }

/* Stages end in order, each after the one before it has passed on all it
 * had: an unterminated last event, or a held body, goes down first. */
int relay_chain_end(relay_chain_t *c, int complete) {
  relay_end_t how = complete ? RELAY_END_COMPLETE : RELAY_END_CUT;
  int rc = 0;
  for (unsigned i = 0; i < c->n && rc == 0 && !c->err; i++) {
    relay_chain_stage_t *st = &c->stage[i];
    relay_filter_t *f = st->f;
    if (st->bypassed) continue;
    if (f->unit == RELAY_UNIT_EVENTS) {
      const char *rest;
      size_t rest_len;
      relay_sse_finish(&st->framer, &rest, &rest_len);
      rc = f->ops->on_end(f, how);
      if (rc == 0) rc = stage_input(c, i + 1, rest, rest_len);
    } else if (f->unit == RELAY_UNIT_BODY) {
      if (complete) rc = f->ops->on_data(f, st->held.data ? st->held.data : "", st->held.len);
      if (rc == 0) rc = f->ops->on_end(f, how);
      relay_buf_dispose(&st->held);
    } else {
      rc = f->ops->on_end(f, how);
    }
  }
  return c->err ? c->err : rc;
}

void relay_chain_dispose(relay_chain_t *c) {
  for (unsigned i = 0; i < c->n; i++) {
    relay_chain_stage_t *st = &c->stage[i];
    st->f->ops->dispose(st->f);
    relay_sse_dispose(&st->framer);
    relay_buf_dispose(&st->held);
  }
  c->n = 0;
}

void relay_chain_stats(const relay_chain_t *c, relay_filter_stats_t *sum) {
  memset(sum, 0, sizeof *sum);
  for (unsigned i = 0; i < c->n; i++) {
    const relay_filter_stats_t *s = &c->stage[i].f->stats;
    sum->events_rewritten += s->events_rewritten;
    sum->reasoning_blocks += s->reasoning_blocks;
    sum->tool_calls += s->tool_calls;
  }
}

/* Media type of a Content-Type value, without parameters. */
static int media_type_is(const char *v, size_t len, const char *type) {
  size_t tl = strlen(type);
  while (len && (*v == ' ' || *v == '\t')) v++, len--;
  if (len < tl || strncasecmp(v, type, tl) != 0) return 0;
  return len == tl || v[tl] == ';' || v[tl] == ' ' || v[tl] == '\t';
}

void relay_response_classify(relay_response_t *r, int status, const relay_head_t *h) {
  r->status = status;
  r->head = h;
  r->media = RELAY_MEDIA_OTHER;
  r->encoded = 0;
  r->content_type = NULL;
  int enc = relay_head_find(h, "content-encoding", 0);
  if (enc >= 0 && !relay_head_value_has_token(relay_head_value(h, (size_t)enc), h->hdrs[enc].value_len, "identity"))
    r->encoded = 1;
  int ct = relay_head_find(h, "content-type", 0);
  if (ct < 0) return;
  const char *v = relay_head_value(h, (size_t)ct);
  size_t vl = h->hdrs[ct].value_len;
  if (media_type_is(v, vl, "text/event-stream")) r->media = RELAY_MEDIA_SSE;
  else if (media_type_is(v, vl, "application/json")) r->media = RELAY_MEDIA_JSON;
}

/* Only a successful, unencoded JSON or SSE response is rewritten; everything
 * else passes through byte for byte. */
int relay_response_is_rewritable(const relay_response_t *r) {
  return r->status >= 200 && r->status <= 299 && !r->encoded && r->media != RELAY_MEDIA_OTHER;
}
