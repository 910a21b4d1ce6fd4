/* Streaming multi-pattern replacer (see include/relay/replacer.h).
 *
 * Each state gets an Aho-Corasick automaton over the patterns that leave it,
 * stored as a dense table of 256 next-node entries per node, so scanning costs
 * one table load per byte. Node ids in the table are row offsets (index * 256)
 * so the hot loop needs no multiply; the top bit of an entry flags the nodes
 * where some pattern ends.
 *
 * Per node we keep:
 *   out  - the rule whose pattern is the longest suffix of the node's string
 *          (the longest match ending here, i.e. the one starting leftmost);
 *   live - the length of the longest suffix of the node's string that can still
 *          grow into a pattern (a trie node with children). No future match can
 *          start before (position - live), which is what settles text.
 *
 * Streaming leftmost-longest: we track the best complete match seen so far
 * (smallest start, then longest). It is final once the live prefix starts after
 * it. Then the text before it is emitted, the replacement is emitted, the state
 * switches and the bytes after the match are scanned again from the new state's
 * root. Without a candidate everything before the live prefix is released.
 *
 * Positions inside one feed are "virtual": 0..held_len-1 are the held bytes,
 * held_len..held_len+len-1 the caller's piece, so text can be emitted straight
 * from the caller's buffer and only the live tail is copied.
 */
#include "relay/replacer.h"

#include <stdlib.h>
#include <string.h>

/* Spare room in the hold buffer for joining the held bytes and a small run of
 * the new piece into one TEXT call (the common case with one token per feed). */
#define RELAY_REPLACER__JOIN 256
/* Below this many bytes a memchr() call costs more than the table walk. */
#define RELAY_REPLACER__SKIP_MIN 16
/* Table entries: the row offset of the next node, plus this bit when a pattern
 * ends at that node (row offsets stay below 2^25). */
#define RELAY_REPLACER__OUT 0x80000000u
#define RELAY_REPLACER__ROW 0x7fffffffu

typedef struct {
  uint16_t live; /* bytes to hold while at this node */
  uint16_t out;  /* 1 + rule index of the longest pattern ending here, 0 = none */
} relay_node_t;

typedef struct {
  uint32_t *next;      /* [nnodes * 256] row offset of the next node */
  relay_node_t *nodes; /* [nnodes] */
  uint32_t nnodes;
  unsigned npatterns;
  int first; /* the byte every pattern starts with, or -1: lets us memchr() */
  int anchored; /* every pattern of the state is anchored at its entry */
} relay_automaton_t;

typedef struct {
  size_t pattern_len;
  const char *replacement; /* into relay_ruleset_s.strings */
  size_t replacement_len;
  unsigned to_state;
} relay_crule_t;

struct relay_ruleset_s {
  unsigned refs;
  unsigned nstates;
  size_t max_pattern;
  size_t nrules;
  relay_crule_t *rules;
  char *strings;
  char *prefix;
  size_t prefix_len;
  relay_automaton_t ac[RELAY_REPLACER_MAX_STATES];
};

/* A trie under construction; `next` doubles as the goto table (0 = no child,
 * which is unambiguous because the root is never anybody's child). */
typedef struct {
  uint32_t *next;
  uint16_t *term;  /* 1 + rule index of the pattern ending at this node */
  uint16_t *depth;
  uint32_t n, cap;
} relay_trie_t;

/* One feed or finish pass: where the virtual positions point. */
typedef struct {
  relay_replacer_t *r;
  const char *data; /* the caller's piece: virtual positions held..held+len-1 */
  size_t held;      /* held bytes at the start of the pass */
  size_t end;       /* held + len */
  size_t rel;       /* everything before this is emitted */
  relay_replacer_emit_cb emit;
  void *ud;
} relay_pass_t;

/* ---- compiling ---------------------------------------------------------- */

/* Reject a rule before any allocation, so errors leave nothing behind. */
static int relay_ruleset__check(const relay_rule_t *rule) {
  if (rule->pattern == NULL || rule->pattern_len == 0) return RELAY_EINVAL;
  if (rule->pattern_len > RELAY_REPLACER_MAX_PATTERN) return RELAY_EINVAL;
  if (rule->replacement == NULL && rule->replacement_len != 0) return RELAY_EINVAL;
  if (rule->from_state >= RELAY_REPLACER_MAX_STATES) return RELAY_EINVAL;
  if (rule->to_state >= RELAY_REPLACER_MAX_STATES) return RELAY_EINVAL;
  return 0;
}

/* Double the trie's node arrays; new rows must read as "no child". */
static int relay_trie__grow(relay_trie_t *t) {
  uint32_t cap = t->cap ? t->cap * 2 : 64;
  uint32_t *next = realloc(t->next, (size_t)cap * 256 * sizeof *next);
  if (!next) return RELAY_ENOMEM;
  t->next = next;
  memset(next + (size_t)t->cap * 256, 0, (size_t)(cap - t->cap) * 256 * sizeof *next);
  uint16_t *term = realloc(t->term, cap * sizeof *term);
  if (!term) return RELAY_ENOMEM;
  t->term = term;
  uint16_t *depth = realloc(t->depth, cap * sizeof *depth);
  if (!depth) return RELAY_ENOMEM;
  t->depth = depth;
  t->cap = cap;
  return 0;
}

/* Add one pattern; an existing terminal keeps its rule so the first rule wins. */
static int relay_trie__insert(relay_trie_t *t, const unsigned char *pat, size_t len,
                              uint16_t rule) {
  uint32_t cur = 0;
  for (size_t i = 0; i < len; i++) {
    uint32_t child = t->next[cur + pat[i]];
    if (child == 0) {
      if (t->n == t->cap && relay_trie__grow(t)) return RELAY_ENOMEM;
      uint32_t id = t->n++;
      child = id * 256;
      t->term[id] = 0;
      t->depth[id] = (uint16_t)(i + 1);
      t->next[cur + pat[i]] = child;
    }
    cur = child;
  }
  if (t->term[cur / 256] == 0) t->term[cur / 256] = (uint16_t)(rule + 1);
  return 0;
}

/* Breadth-first pass turning the trie into the full automaton: fill missing
 * transitions from the failure node, and inherit out/live from it. The failure
 * node is shallower, so it is always finished before the nodes that use it. */
static int relay_trie__link(relay_trie_t *t, relay_automaton_t *ac) {
  uint32_t n = t->n;
  uint32_t *fail = malloc(n * sizeof *fail);
  uint32_t *queue = malloc(n * sizeof *queue);
  relay_node_t *nodes = calloc(n, sizeof *nodes);
  if (!fail || !queue || !nodes) {
    free(fail);
    free(queue);
    free(nodes);
    return RELAY_ENOMEM;
  }
  uint32_t *next = t->next;
  uint32_t head = 0, tail = 0;
  for (unsigned c = 0; c < 256; c++) {
    uint32_t child = next[c];
    if (child) {
      fail[child / 256] = 0;
      queue[tail++] = child;
    }
  }
  while (head < tail) {
    uint32_t u = queue[head++], ui = u / 256, f = fail[ui];
    int kids = 0;
    for (unsigned c = 0; c < 256; c++) {
      uint32_t child = next[u + c];
      if (child) {
        kids = 1;
        fail[child / 256] = next[f + c];
        queue[tail++] = child;
      } else {
        next[u + c] = next[f + c];
      }
    }
    nodes[ui].out = t->term[ui] ? t->term[ui] : nodes[f / 256].out;
    nodes[ui].live = kids ? t->depth[ui] : nodes[f / 256].live;
  }
  /* Flag every edge into a node where a pattern ends, so the hot loop needs
   * the node record only there. */
  for (size_t e = 0; e < (size_t)n * 256; e++)
    if (nodes[next[e] / 256].out) next[e] |= RELAY_REPLACER__OUT;
  free(fail);
  free(queue);
  /* Give back the unused rows of the last doubling. */
  uint32_t *shrunk = realloc(next, (size_t)n * 256 * sizeof *next);
  ac->next = shrunk ? shrunk : next;
  t->next = NULL;
  ac->nodes = nodes;
  ac->nnodes = n;
  return 0;
}

/* Build the automaton of one state from the rules that leave it. */
static int relay_automaton__build(relay_automaton_t *ac, const relay_rule_t *rules,
                                  size_t nrules, unsigned state) {
  relay_trie_t t = {0};
  int err = relay_trie__grow(&t);
  if (err) goto done;
  t.n = 1; /* the root */
  t.term[0] = 0;
  t.depth[0] = 0;
  ac->first = -1;
  ac->npatterns = 0;
  ac->anchored = 0;
  for (size_t i = 0; i < nrules; i++) {
    const relay_rule_t *rule = &rules[i];
    if (rule->from_state != state) continue;
    /* Mixed anchored and floating rules in one state are refused. */
    if (ac->npatterns > 0 && ac->anchored != (rule->anchored != 0)) {
      err = RELAY_EINVAL;
      goto done;
    }
    ac->anchored = rule->anchored != 0;
    const unsigned char *pat = (const unsigned char *)rule->pattern;
    if (ac->npatterns == 0) ac->first = pat[0];
    else if (ac->first != pat[0]) ac->first = -1;
    ac->npatterns++;
    err = relay_trie__insert(&t, pat, rule->pattern_len, (uint16_t)i);
    if (err) goto done;
  }
  err = relay_trie__link(&t, ac);
done:
  free(t.next);
  free(t.term);
  free(t.depth);
  return err;
}

/* Free whatever relay_ruleset_new() managed to build. */
static void relay_ruleset__destroy(relay_ruleset_t *rs) {
  for (unsigned s = 0; s < RELAY_REPLACER_MAX_STATES; s++) {
    free(rs->ac[s].next);
    free(rs->ac[s].nodes);
  }
  free(rs->rules);
  free(rs->strings);
  free(rs->prefix);
  free(rs);
}

/* Validate everything first, then copy the replacements (the caller's strings
 * may be Lua strings that die with a reload) and build one automaton per state. */
int relay_ruleset_new(relay_ruleset_t **out, const relay_rule_t *rules, size_t nrules) {
  if (out == NULL) return RELAY_EINVAL;
  *out = NULL;
  if (nrules > RELAY_REPLACER_MAX_RULES) return RELAY_ETOOMANY;
  if (nrules > 0 && rules == NULL) return RELAY_EINVAL;
  size_t strbytes = 1, max_pattern = 0;
  unsigned nstates = 1;
  for (size_t i = 0; i < nrules; i++) {
    int err = relay_ruleset__check(&rules[i]);
    if (err) return err;
    if (strbytes + rules[i].replacement_len + 1 < strbytes) return RELAY_ENOMEM;
    strbytes += rules[i].replacement_len + 1;
    if (rules[i].pattern_len > max_pattern) max_pattern = rules[i].pattern_len;
    if (rules[i].from_state + 1 > nstates) nstates = rules[i].from_state + 1;
    if (rules[i].to_state + 1 > nstates) nstates = rules[i].to_state + 1;
  }
  relay_ruleset_t *rs = calloc(1, sizeof *rs);
  if (!rs) return RELAY_ENOMEM;
  rs->rules = calloc(nrules ? nrules : 1, sizeof *rs->rules);
  rs->strings = malloc(strbytes);
  if (!rs->rules || !rs->strings) {
    relay_ruleset__destroy(rs);
    return RELAY_ENOMEM;
  }
  char *s = rs->strings;
  *s++ = '\0'; /* shared empty replacement */
  for (size_t i = 0; i < nrules; i++) {
    relay_crule_t *cr = &rs->rules[i];
    cr->pattern_len = rules[i].pattern_len;
    cr->replacement_len = rules[i].replacement_len;
    cr->to_state = rules[i].to_state;
    cr->replacement = rs->strings;
    if (cr->replacement_len) {
      memcpy(s, rules[i].replacement, cr->replacement_len);
      s[cr->replacement_len] = '\0';
      cr->replacement = s;
      s += cr->replacement_len + 1;
    }
  }
  for (unsigned st = 0; st < nstates; st++) {
    int err = relay_automaton__build(&rs->ac[st], rules, nrules, st);
    if (err) {
      relay_ruleset__destroy(rs);
      return err;
    }
  }
  rs->refs = 1;
  rs->nstates = nstates;
  rs->max_pattern = max_pattern;
  rs->nrules = nrules;
  *out = rs;
  return 0;
}

/* Atomic so that one compiled set can be handed to several worker threads. */
void relay_ruleset_ref(relay_ruleset_t *rs) {
  __atomic_fetch_add(&rs->refs, 1, __ATOMIC_RELAXED);
}

/* The last reference frees; acquire/release so the freeing thread sees all uses. */
void relay_ruleset_unref(relay_ruleset_t *rs) {
  if (rs == NULL) return;
  if (__atomic_sub_fetch(&rs->refs, 1, __ATOMIC_ACQ_REL) == 0) relay_ruleset__destroy(rs);
}

/* Kept for symmetry with relay_ruleset_new(); a rule set is only ever unref'd. */

/* Callers size their own look-ahead (and tests bound pending()) with this. */
size_t relay_ruleset_max_pattern(const relay_ruleset_t *rs) { return rs->max_pattern; }

int relay_ruleset_set_prefix(relay_ruleset_t *rs, const char *prefix, size_t len) {
  if (rs == NULL || (prefix == NULL && len > 0) || len > RELAY_REPLACER_MAX_PATTERN) return RELAY_EINVAL;
  char *copy = NULL;
  if (len) {
    copy = malloc(len);
    if (!copy) return RELAY_ENOMEM;
    memcpy(copy, prefix, len);
  }
  free(rs->prefix);
  rs->prefix = copy;
  rs->prefix_len = len;
  return 0;
}

/* Until the first output, emit goes through here so the prefix leads it. */
typedef struct {
  relay_replacer_t *r;
  relay_replacer_emit_cb emit;
  void *ud;
} relay_prefix_t;

static void relay_prefix__emit(void *ud, relay_out_kind_t kind, unsigned state, const char *data, size_t len) {
  relay_prefix_t *t = ud;
  if (!t->r->started) {
    t->r->started = 1;
    t->emit(t->ud, RELAY_OUT_REPLACEMENT, 0, t->r->rs->prefix, t->r->rs->prefix_len);
  }
  t->emit(t->ud, kind, state, data, len);
}

/* Lets a receiver check that its output modes cover every state. */
unsigned relay_ruleset_nstates(const relay_ruleset_t *rs) { return rs->nstates; }

/* ---- streaming ---------------------------------------------------------- */

/* Allocate the hold buffer once, so that feeding never allocates. */
int relay_replacer_init(relay_replacer_t *r, const relay_ruleset_t *rs) {
  if (r == NULL) return RELAY_EINVAL;
  memset(r, 0, sizeof *r);
  r->cand_rule = -1;
  if (rs == NULL) return RELAY_EINVAL;
  r->held_cap = rs->max_pattern + RELAY_REPLACER__JOIN;
  r->held = malloc(r->held_cap);
  if (!r->held) return RELAY_ENOMEM;
  /* The count is the only mutable part of a rule set. */
  relay_ruleset_ref((relay_ruleset_t *)rs);
  r->rs = rs;
  return 0;
}

/* Leaves the struct zeroed so a second close (or a stray feed) is harmless. */
void relay_replacer_dispose(relay_replacer_t *r) {
  if (r == NULL || r->rs == NULL) return;
  free(r->held);
  relay_ruleset_unref((relay_ruleset_t *)r->rs);
  memset(r, 0, sizeof *r);
  r->cand_rule = -1;
}

/* Lets the receiver tell an empty event from text still on hold. */
size_t relay_replacer_pending(const relay_replacer_t *r) { return r->held_len; }

/* Emit virtual range [a, b) as text in the current state. A range that spans
 * the held bytes and the piece is joined in the hold buffer's spare room when
 * small, so a typical token costs one call; nothing after b is in the held part
 * then, so writing past held is safe. */
static void relay_pass__text(relay_pass_t *ps, size_t a, size_t b) {
  relay_replacer_t *r = ps->r;
  size_t h = ps->held;
  if (a >= b) return;
  if (b <= h) {
    ps->emit(ps->ud, RELAY_OUT_TEXT, r->state, r->held + a, b - a);
  } else if (a >= h) {
    ps->emit(ps->ud, RELAY_OUT_TEXT, r->state, ps->data + (a - h), b - a);
  } else if (b - h <= r->held_cap - h) {
    memcpy(r->held + h, ps->data, b - h);
    ps->emit(ps->ud, RELAY_OUT_TEXT, r->state, r->held + a, b - a);
  } else {
    ps->emit(ps->ud, RELAY_OUT_TEXT, r->state, r->held + a, h - a);
    ps->emit(ps->ud, RELAY_OUT_TEXT, r->state, ps->data, b - h);
  }
}

/* Fire the candidate: text before it, its replacement, the state change. The
 * caller rescans from the returned position (the end of the match) at the root
 * of the new state, because matches never overlap a replaced one. */
static size_t relay_pass__resolve(relay_pass_t *ps) {
  relay_replacer_t *r = ps->r;
  const relay_crule_t *rule = &r->rs->rules[r->cand_rule];
  relay_pass__text(ps, ps->rel, r->cand_start);
  ps->emit(ps->ud, RELAY_OUT_REPLACEMENT, rule->to_state, rule->replacement,
           rule->replacement_len);
  r->state = rule->to_state;
  r->node = 0;
  r->matches++;
  ps->rel = r->cand_start + rule->pattern_len;
  r->cand_rule = -1;
  r->entry = ps->rel;
  r->anchor_dead = 0;
  return ps->rel;
}

static int relay_pass__check(relay_pass_t *ps, const relay_node_t *nd, size_t pos);

/* An anchored state: the bytes since its entry are held while they can still
 * start one of its patterns there; the first byte that rules them all out
 * kills the state's patterns and lets the bytes go as plain text. */
static size_t relay_pass__scan_anchored(relay_pass_t *ps, const unsigned char *seg, size_t off,
                                        size_t p, size_t end) {
  relay_replacer_t *r = ps->r;
  const relay_automaton_t *ac = &r->rs->ac[r->state];
  if (r->anchor_dead) return end;
  uint32_t cur = r->node;
  for (size_t i = p - off, n = end - off; i < n;) {
    uint32_t x = ac->next[cur + seg[i++]];
    cur = x & RELAY_REPLACER__ROW;
    const relay_node_t *nd = &ac->nodes[cur / 256];
    size_t pos = off + i;
    if ((x & RELAY_REPLACER__OUT) || r->cand_rule >= 0) {
      if (nd->out && pos - r->rs->rules[nd->out - 1].pattern_len != r->entry) {
        /* a match that does not start at the entry does not count */
      } else if (relay_pass__check(ps, nd, pos)) {
        return relay_pass__resolve(ps);
      }
    }
    if (r->cand_rule < 0 && nd->live < pos - r->entry) {
      r->anchor_dead = 1;
      r->node = 0;
      return end;
    }
  }
  r->node = cur;
  return end;
}

/* Slow path of the scan, taken only where a pattern ends or a candidate is
 * pending: keep the leftmost-longest candidate and fire it once no live prefix
 * starts at or before it. Returns 1 if a rule fired. */
static int relay_pass__check(relay_pass_t *ps, const relay_node_t *nd, size_t pos) {
  relay_replacer_t *r = ps->r;
  if (nd->out) {
    size_t start = pos - r->rs->rules[nd->out - 1].pattern_len;
    /* Ending later with the same start means longer, so <= keeps the longest. */
    if (r->cand_rule < 0 || start <= r->cand_start) {
      r->cand_rule = nd->out - 1;
      r->cand_start = start;
    }
  }
  return r->cand_rule >= 0 && pos - nd->live > r->cand_start;
}

/* Walk virtual positions [p, end) that live in one buffer (seg holds position
 * off at seg[0]). Returns end, or the rescan point after a rule fired. The
 * common path per byte is one table load, a mask and one test: the entry's top
 * bit says whether a pattern ends at the next node. */
static size_t relay_pass__scan(relay_pass_t *ps, const unsigned char *seg, size_t off,
                               size_t p, size_t end) {
  relay_replacer_t *r = ps->r;
  const relay_automaton_t *ac = &r->rs->ac[r->state];
  if (ac->npatterns == 0) return end;
  if (ac->anchored) return relay_pass__scan_anchored(ps, seg, off, p, end);
  const uint32_t *next = ac->next;
  const relay_node_t *nodes = ac->nodes;
  uint32_t cur = r->node, x;
  uint32_t have = r->cand_rule >= 0 ? RELAY_REPLACER__OUT : 0;
  size_t i = p - off, n = end - off;
  if (ac->first >= 0 && n - i >= RELAY_REPLACER__SKIP_MIN) {
    /* A long run: from the root with nothing pending, jump to the next byte
     * that can start a pattern. */
    while (i < n) {
      if (cur == 0 && !have) {
        const unsigned char *q = memchr(seg + i, ac->first, n - i);
        if (q == NULL) break;
        i = (size_t)(q - seg);
      }
      x = next[cur + seg[i++]];
      cur = x & RELAY_REPLACER__ROW;
      if ((x | have) & RELAY_REPLACER__OUT) {
        if (relay_pass__check(ps, &nodes[cur / 256], off + i)) return relay_pass__resolve(ps);
        have = r->cand_rule >= 0 ? RELAY_REPLACER__OUT : 0;
      }
    }
  } else {
    while (i < n) {
      x = next[cur + seg[i++]];
      cur = x & RELAY_REPLACER__ROW;
      if ((x | have) & RELAY_REPLACER__OUT) {
        if (relay_pass__check(ps, &nodes[cur / 256], off + i)) return relay_pass__resolve(ps);
        have = r->cand_rule >= 0 ? RELAY_REPLACER__OUT : 0;
      }
    }
  }
  r->node = cur;
  return end;
}

/* Scan from p to the end of the pass, across the held part and the piece,
 * following every rule that fires (each one moves p past its match). */
static void relay_pass__run(relay_pass_t *ps, size_t p) {
  while (p < ps->end) {
    if (p < ps->held)
      p = relay_pass__scan(ps, (const unsigned char *)ps->r->held, 0, p, ps->held);
    else
      p = relay_pass__scan(ps, (const unsigned char *)ps->data, ps->held, p, ps->end);
  }
}

/* Release everything before the live prefix and keep the prefix (which holds
 * any pending candidate) at the start of the hold buffer. */
static void relay_pass__settle(relay_pass_t *ps) {
  relay_replacer_t *r = ps->r;
  size_t live = r->rs->ac[r->state].nodes[r->node / 256].live;
  size_t keep = ps->end - live;
  relay_pass__text(ps, ps->rel, keep);
  if (keep >= ps->held) {
    if (live) memcpy(r->held, ps->data + (keep - ps->held), live);
  } else {
    memmove(r->held, r->held + keep, ps->held - keep);
    memcpy(r->held + (ps->held - keep), ps->data, ps->end - ps->held);
  }
  r->held_len = live;
  if (r->cand_rule >= 0) r->cand_start -= keep;
  r->entry = r->entry > keep ? r->entry - keep : 0;
}

/* The held bytes were already scanned, so scanning resumes at the new piece. */
int relay_replacer_feed(relay_replacer_t *r, const char *data, size_t len,
                        relay_replacer_emit_cb emit, void *ud) {
  if (r == NULL || r->rs == NULL || (data == NULL && len > 0)) return RELAY_EINVAL;
  if (len == 0) return 0;
  relay_prefix_t t = {r, emit, ud};
  if (!r->started && r->rs->prefix_len) {
    emit = relay_prefix__emit;
    ud = &t;
  }
  relay_pass_t ps = {r, data, r->held_len, r->held_len + len, 0, emit, ud};
  relay_pass__run(&ps, ps.held);
  relay_pass__settle(&ps);
  return 0;
}

/* No more bytes can come, so a pending candidate is final; firing it rescans
 * the bytes after it, which may leave another candidate, hence the loop. */
int relay_replacer_finish(relay_replacer_t *r, relay_replacer_emit_cb emit, void *ud) {
  if (r == NULL || r->rs == NULL) return RELAY_EINVAL;
  relay_prefix_t t = {r, emit, ud};
  if (!r->started && r->rs->prefix_len) {
    emit = relay_prefix__emit;
    ud = &t;
  }
  relay_pass_t ps = {r, NULL, r->held_len, r->held_len, 0, emit, ud};
  while (r->cand_rule >= 0) relay_pass__run(&ps, relay_pass__resolve(&ps));
  relay_pass__text(&ps, ps.rel, ps.held);
  r->held_len = 0;
  r->node = 0;
  r->entry = 0;
  return 0;
}

/* For log lines and script errors (e.g. a bad rule from a user script). */
