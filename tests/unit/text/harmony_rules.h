/* The stock gpt-oss "harmony" rule set as a C table, for the C tests and the
 * fuzzer. The stock Lua script carries the same table; keep the two in step.
 *
 * State 0 = outside (final channel or no channel yet), 1 = inside (analysis).
 * Inside, a lone "<|end|>" is deliberately not a rule: it is a prefix of the
 * longer "<|end|><|start|>..." patterns and, followed by anything else, it is
 * plain analysis text. */
#ifndef RELAY_TEST_HARMONY_RULES_H
#define RELAY_TEST_HARMONY_RULES_H

#include "relay/replacer.h"

#define HARMONY_RULE(from, pat, repl, to) \
  { (from), (pat), sizeof(pat) - 1, (repl), sizeof(repl) - 1, (to) }

static const relay_rule_t harmony_rules[] = {
    /* outside */
    HARMONY_RULE(0, "<|start|>assistant<|channel|>analysis<|message|>", "<think>", 1),
    HARMONY_RULE(0, "<|channel|>analysis<|message|>", "<think>", 1),
    HARMONY_RULE(0, "<|start|>assistant<|channel|>final<|message|>", "", 0),
    HARMONY_RULE(0, "<|channel|>final<|message|>", "", 0),
    HARMONY_RULE(0, "<|return|>", "", 0),
    HARMONY_RULE(0, "<|end|>", "", 0),
    /* inside */
    HARMONY_RULE(1, "<|end|><|start|>assistant<|channel|>final<|message|>", "</think>", 0),
    HARMONY_RULE(1, "<|start|>assistant<|channel|>final<|message|>", "</think>", 0),
    HARMONY_RULE(1, "<|channel|>final<|message|>", "</think>", 0),
    HARMONY_RULE(1, "<|end|><|channel|>final<|message|>", "</think>", 0),
    /* a second analysis message joins the same think block */
    HARMONY_RULE(1, "<|end|><|start|>assistant<|channel|>analysis<|message|>", "", 1),
    HARMONY_RULE(1, "<|start|>assistant<|channel|>analysis<|message|>", "", 1),
    /* a tool call closes the think block; its own text is left untouched */
    HARMONY_RULE(1, "<|end|><|start|>assistant<|channel|>commentary",
                 "</think><|start|>assistant<|channel|>commentary", 0),
    HARMONY_RULE(1, "<|start|>assistant<|channel|>commentary",
                 "</think><|start|>assistant<|channel|>commentary", 0),
    HARMONY_RULE(1, "<|return|>", "</think>", 0),
};

#define HARMONY_NRULES (sizeof harmony_rules / sizeof harmony_rules[0])

#endif
