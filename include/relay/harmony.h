/* Streaming parser for gpt-oss "harmony" text left in a choice's content.
 *
 * Servers that do not parse gpt-oss output themselves leave the harmony
 * framing in `content`:
 *
 *   <|channel|>analysis<|message|>REASONING<|end|>
 *   <|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"city":"Paris"}<|call|>
 *   <|start|>assistant<|channel|>final<|message|>ANSWER<|return|>
 *
 * A parser takes the decoded text of ONE choice in pieces of any size (cut
 * anywhere: inside a marker, a header or a UTF-8 character) and reports typed
 * segments through a callback as soon as they are settled:
 *
 *   CONTENT     the final channel's body; a preamble (commentary without a
 *               recipient); a message without a channel; text outside any
 *               harmony framing (text with no markers comes out unchanged);
 *               markup that does not parse, passed through exactly.
 *   REASONING   the analysis channel's body (without a recipient).
 *   CALL_BEGIN  a message with a recipient (`to=...`) starts a tool call:
 *               data is the tool name ("functions." removed; built-ins such
 *               as "browser.search", "python", "container.exec" whole).
 *   CALL_ARGS   the call's body, exactly as written (valid JSON or not).
 *   CALL_END    the call ended: complete = 1 when a marker closed it
 *               (<|call|>, <|end|>, <|return|>), 0 when it was cut (finish(),
 *               or a new <|start|>/<|channel|> with no closing marker).
 *
 * Markers: <|start|> <|channel|> <|message|> <|constrain|> <|end|> <|call|>
 * <|return|>. A message is [<|start|>ROLE [to=R]] [<|channel|>NAME [to=R]
 * [[<|constrain|>]TYPE]] <|message|> BODY, ended by <|end|>, <|call|> or
 * <|return|>, or by a new <|start|> or <|channel|> (llama-server drops
 * <|end|>). The header (from its opening <|start|> or <|channel|> up to
 * <|message|>) is parsed when <|message|> arrives. At the very start of the
 * text a header may also begin with no marker, as spaces and "to=": the
 * prompt ended in <|start|>assistant and the model went on with the role
 * header (" to=functions.f<|channel|>commentary json<|message|>{...}",
 * llama.cpp's tests); only those leading spaces and "to=" are held to see it. It is accepted when: the
 * role, if any, is "assistant"; the channel, if any, is analysis, commentary
 * or final; at most one recipient, non-empty, without '<'; other words only
 * after the channel name (content types such as "json"). Anything else, a
 * header longer than RELAY_HARMONY_MAX_HEADER bytes or with more than
 * RELAY_HARMONY_MAX_WORDS words, a control byte (newline...) in a header, or
 * an end marker inside one, is passed through as CONTENT byte for byte, and
 * parsing goes on after it as if outside any message. A second <|start|> (or
 * a second <|channel|>) in a header releases the first as CONTENT and starts
 * a new header. Outside a message and in a body, <|end|>, <|call|> and
 * <|return|> produce nothing (a trailing <|return|> after the answer
 * disappears); <|message|> and <|constrain|> there are plain text.
 *
 * Servers drop the stop tokens <|call|> and <|return|> from content, so a
 * call usually ends at finish(): a CALL_END that arrives during finish()
 * means "the text ended"; whether that was a truncation is finish_reason's
 * to say ("length"). llama.cpp with --reasoning-format none eats the final
 * header: "<|channel|>analysis<|message|>A<|end|>F" gives REASONING "A",
 * CONTENT "F" (text after <|end|> is outside any message, so content).
 *
 * Streaming: outside a header only the longest tail that is still a prefix
 * of a marker that matters in the current state is held back (at most
 * RELAY_HARMONY_MAX_MARKER - 1 bytes, always starting with '<'); inside a
 * header the header is held until it is decided. What is held always begins
 * with an ASCII '<', so the text released by the end of each feed() is the
 * text fed so far up to a character boundary whenever the pieces fed so far
 * end on one: the parser splits no UTF-8 character between feed() calls that
 * the caller did not split (within one call, consecutive segments of one
 * kind may; join them before encoding). Feeding a text one
 * byte at a time gives exactly the same output as feeding it whole, apart
 * from how text of one kind is cut into callback calls: the concatenated
 * text per kind between two CALL_BEGIN/CALL_END segments is the same, and
 * CALL_BEGIN/CALL_END come at the same places. Work per input byte is bounded
 * by a constant; the parser never allocates (it holds fixed buffers).
 *
 * Tool call ids are left to the consumer; relay_harmony_call_id() makes
 * unique ones from a per-response seed and a counter.
 */
#ifndef RELAY_HARMONY_H
#define RELAY_HARMONY_H

#include <stddef.h>

#include "relay/error.h"
#include <stdint.h>

/* Longest header held (opening marker included, <|message|> excluded). */
#define RELAY_HARMONY_MAX_HEADER 512
/* Most whitespace-separated words in a header; real ones have at most four
 * ("assistant to=functions.f commentary json"), so prose that happens to
 * contain a stray <|start|> is released after a few words. */
#define RELAY_HARMONY_MAX_WORDS 8
/* Longest marker, "<|constrain|>". */
#define RELAY_HARMONY_MAX_MARKER 13
/* Upper bound of relay_harmony_pending(). */
#define RELAY_HARMONY_MAX_HELD (RELAY_HARMONY_MAX_HEADER + RELAY_HARMONY_MAX_MARKER - 1)

/* Errors (relay/error.h): RELAY_EINVAL for a NULL parser or callback, or NULL
 * data with len > 0. */

typedef enum {
  RELAY_HARMONY_CONTENT = 0,
  RELAY_HARMONY_REASONING = 1,
  RELAY_HARMONY_CALL_BEGIN = 2,
  RELAY_HARMONY_CALL_ARGS = 3,
  RELAY_HARMONY_CALL_END = 4,
} relay_harmony_kind_t;

/* One output segment. All pointers are valid only during the callback. */
typedef struct relay_harmony_seg_s {
  relay_harmony_kind_t kind;
  /* CONTENT, REASONING, CALL_ARGS: the text (len > 0 always). CALL_BEGIN: the
   * tool name (len > 0; any bytes but whitespace, control bytes and '<':
   * escape it before writing it into JSON). CALL_END: "" (len 0). Never NULL. */
  const char *data;
  size_t len;
  /* CALL_*: index of the call in this choice's text, from 0 (the OpenAI
   * tool_calls index). 0 for other kinds. */
  unsigned call;
  /* CALL_BEGIN: the recipient as written ("functions.get_weather",
   * "browser.search"); tells a declared function from a built-in tool.
   * NULL / 0 for other kinds. */
  const char *recipient;
  size_t recipient_len;
  /* CALL_END: 1 closed by a marker, 0 cut (see above: usual at finish()).
   * 0 for other kinds. */
  int complete;
  /* CALL_BEGIN: the call's header exactly as written, from its opening
   * marker (or the leading " to=" of a header that began the text) up to
   * <|message|>, which is not included; lets a consumer that does not turn
   * calls into tool_calls give the text back. NULL / 0 for other kinds. */
  const char *header;
  size_t header_len;
} relay_harmony_seg_t;

/* Called in output order. Must not feed or finish the parser that called it. */
typedef void (*relay_harmony_emit_cb)(void *ud, const relay_harmony_seg_t *seg);

/* One choice's text. Fields are private except the counters, which may be
 * read for logs and metrics. Owns no resources: no close is needed, and a
 * parser may be copied or reset with relay_harmony_init() at any time. */
typedef struct relay_harmony_s {
  /* counters */
  uint64_t calls;     /* CALL_BEGIN segments emitted */
  uint64_t calls_cut; /* CALL_END segments with complete = 0 */
  uint64_t markers;   /* harmony markers recognised (see relay_harmony_seen) */
  uint64_t fallbacks; /* headers passed through as CONTENT */
  /* private */
  int state;           /* start of text, outside, header, body */
  int body;            /* kind of the body being read */
  int head_open;       /* marker that opened the header */
  int head_channel;    /* the header holds a <|channel|> */
  int head_in_word;    /* the last header byte was part of a word */
  unsigned head_words; /* words in the header so far */
  unsigned probe_to;   /* bytes of "to=" seen at the start of the text */
  size_t head_len;
  size_t mark_len;     /* bytes of a possible marker held */
  unsigned mark_cand;  /* markers still possible (bit per marker) */
  char mark[RELAY_HARMONY_MAX_MARKER];
  char head[RELAY_HARMONY_MAX_HEADER];
} relay_harmony_t;

/* Start outside any message, with nothing held and the counters at zero. */
void relay_harmony_init(relay_harmony_t *p);
/* Feed len bytes; settled segments go to emit before this returns.
 * Returns 0 or RELAY_EINVAL. */
int relay_harmony_feed(relay_harmony_t *p, const char *data, size_t len,
                       relay_harmony_emit_cb emit, void *ud);
/* End of the text: release everything held (a partial marker as text of the
 * current kind, an undecided header as CONTENT), end an open call with
 * CALL_END complete = 0, and start over as at the start of a text. Calling
 * it again emits nothing; text fed afterwards is parsed as a new text (the
 * counters go on). Returns 0 or RELAY_EINVAL. */
int relay_harmony_finish(relay_harmony_t *p, relay_harmony_emit_cb emit, void *ud);
/* Bytes held back now (at most RELAY_HARMONY_MAX_HELD; 0 after finish). */
size_t relay_harmony_pending(const relay_harmony_t *p);
/* Nonzero once any harmony marker was recognised in this text (even one that
 * was passed through as part of a malformed header). */
int relay_harmony_seen(const relay_harmony_t *p);
/* Nonzero while a call is open (between CALL_BEGIN and CALL_END). */
int relay_harmony_in_call(const relay_harmony_t *p);

/* "call_" + 24 characters of [0-9A-Za-z], NUL-terminated. */
#define RELAY_HARMONY_CALL_ID_LEN 29
/* Write the id of call number n of a response into out (at least
 * RELAY_HARMONY_CALL_ID_LEN + 1 bytes). The 24 characters are a bijective
 * mix of (seed, n): for one seed, different n always give different ids.
 * Uniqueness across responses rests on the seed: draw it per response from a
 * random source (uv_random, getrandom), not from a clock. No global state. */
void relay_harmony_call_id(char *out, uint64_t seed, uint64_t n);

#endif
