/*
 * The C API from C: load a model, tokenize, evaluate, generate (with a callback that stops it),
 * swap adapters per session, perplexity, the memory budget, threads, training (step with a progress
 * callback that stops it, checkpoint, resume, save and load the adapter), and the error paths (NULL
 * pointers, bad paths and lengths, stale handles, a re-entrant call). Built and run by
 * tests/capi_c.rs on the default model, and under valgrind (or ASan) on a tiny model; the checks
 * hold for any llama model and two adapters that fit it.
 *
 *   capi_test [--smoke] MODEL.gguf ADAPTER_A ADAPTER_B
 *
 * --smoke: only load, adapter swap, a short generation and a small perplexity (the default model
 * under valgrind, where each token costs seconds).
 *
 * Prints "N passed, N failed" last; exits 0 only when nothing failed.
 */
#define _POSIX_C_SOURCE 200809L /* mkdtemp, unlink, rmdir */
#include "graft.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int passed, failed;

static void check(int ok, const char *file, int line, const char *what) {
    if (ok) {
        passed++;
    } else {
        failed++;
        fprintf(stderr, "FAIL %s:%d: %s (last error: %s)\n", file, line, what, graft_last_error());
    }
}
#define CHECK(cond) check((cond) ? 1 : 0, __FILE__, __LINE__, #cond)

static void expect(GraftStatus got, GraftStatus want, const char *file, int line, const char *call) {
    if (got == want) {
        passed++;
    } else {
        failed++;
        fprintf(stderr, "FAIL %s:%d: %s returned %s, expected %s (last error: %s)\n", file, line, call,
                graft_status_name((int)got), graft_status_name((int)want), graft_last_error());
    }
}
#define EXPECT(call, status) expect((call), (status), __FILE__, __LINE__, #call)
#define OK(call) EXPECT(call, GRAFT_STATUS_OK)

/* Stops the run when a step that everything after depends on failed. */
#define REQUIRE(call)                                                                        \
    do {                                                                                     \
        GraftStatus st_ = (call);                                                            \
        expect(st_, GRAFT_STATUS_OK, __FILE__, __LINE__, #call);                             \
        if (st_ != GRAFT_STATUS_OK) {                                                        \
            printf("%d passed, %d failed\n", passed, failed);                                \
            exit(1);                                                                         \
        }                                                                                    \
    } while (0)

static int last_error_contains(const char *needle) { return strstr(graft_last_error(), needle) != NULL; }

static const char *PROMPT = "The capital of France is";

/* Public-domain text for the perplexity check (the first lines of the US constitution). */
static const char *TEXT =
    "We the People of the United States, in Order to form a more perfect Union, establish Justice, "
    "insure domestic Tranquility, provide for the common defence, promote the general Welfare, and "
    "secure the Blessings of Liberty to ourselves and our Posterity, do ordain and establish this "
    "Constitution for the United States of America. All legislative Powers herein granted shall be "
    "vested in a Congress of the United States, which shall consist of a Senate and House of "
    "Representatives.";

#define MAX_TOK 256

typedef struct {
    uint32_t tokens[MAX_TOK];
    size_t n;
    char text[4096];
    size_t text_len;
    size_t stop_after;             /* return false on this token (1-based); 0: never */
    graft_session *reenter;        /* when set, the callback calls graft_session_eval on it */
    GraftStatus reenter_status;
} collect_t;

static bool collect(void *user_data, uint32_t token, const char *piece, size_t piece_len) {
    collect_t *c = (collect_t *)user_data;
    if (c->n < MAX_TOK) c->tokens[c->n++] = token;
    if (piece[piece_len] != '\0') return false; /* the piece is NUL-terminated */
    if (c->text_len + piece_len < sizeof c->text) {
        memcpy(c->text + c->text_len, piece, piece_len);
        c->text_len += piece_len;
        c->text[c->text_len] = '\0';
    }
    if (c->reenter) c->reenter_status = graft_session_eval(c->reenter, &token, 1);
    return !(c->stop_after && c->n >= c->stop_after);
}

static size_t tokenize(graft_model *m, const char *text, uint32_t *out, size_t cap) {
    size_t n = 0;
    OK(graft_tokenize(m, text, strlen(text), true, false, out, cap, &n));
    return n;
}

static float *logits_of(graft_session *s, size_t n_vocab) {
    float *l = malloc(n_vocab * sizeof *l);
    size_t n = 0;
    OK(graft_session_logits(s, l, n_vocab, &n));
    CHECK(n == n_vocab);
    return l;
}

static float max_abs_diff(const float *a, const float *b, size_t n) {
    float d = 0;
    for (size_t i = 0; i < n; i++) d = fmaxf(d, fabsf(a[i] - b[i]));
    return d;
}

static uint32_t argmax(const float *l, size_t n) {
    size_t best = 0;
    for (size_t i = 1; i < n; i++)
        if (l[i] > l[best]) best = i;
    return (uint32_t)best;
}

/* ---------------------------------------------------------------------------------------------- */

static void test_basics(void) {
    CHECK(strcmp(graft_last_error(), "") == 0);
    CHECK(strlen(graft_version()) > 0);
    CHECK(strcmp(graft_status_name(GRAFT_STATUS_ERR_BUSY), "GRAFT_STATUS_ERR_BUSY") == 0);
    CHECK(strcmp(graft_status_name(999), "GRAFT_STATUS_UNKNOWN") == 0);
    EXPECT(graft_model_options_default(NULL), GRAFT_STATUS_ERR_NULL_POINTER);
    CHECK(last_error_contains("graft_model_options_default: options is NULL"));
    EXPECT(graft_session_options_default(NULL), GRAFT_STATUS_ERR_NULL_POINTER);
    /* Freeing NULL does nothing. */
    OK(graft_model_free(NULL));
    OK(graft_session_free(NULL));
    OK(graft_adapter_list_free(NULL));
}

static void test_load_errors(const char *model_path) {
    graft_model *m = NULL;
    graft_model_options o;
    OK(graft_model_options_default(&o));
    CHECK(o.threads == 0 && o.device == NULL && o.memory_budget == 0 && o.numerics == GRAFT_NUMERICS_Q8);

    EXPECT(graft_model_load(NULL, &o, &m), GRAFT_STATUS_ERR_NULL_POINTER);
    CHECK(last_error_contains("path is NULL"));
    EXPECT(graft_model_load(model_path, &o, NULL), GRAFT_STATUS_ERR_NULL_POINTER);
    EXPECT(graft_model_load("/nonexistent/model.gguf", &o, &m), GRAFT_STATUS_ERR_IO);
    CHECK(last_error_contains("/nonexistent/model.gguf"));
    CHECK(m == NULL);

    /* Not a GGUF file (one every Linux machine has). */
    GraftStatus st = graft_model_load("/etc/passwd", &o, &m);
    CHECK(st == GRAFT_STATUS_ERR_FORMAT || st == GRAFT_STATUS_ERR_IO);
    CHECK(m == NULL);

    o.device = "cuda";
    EXPECT(graft_model_load(model_path, &o, &m), GRAFT_STATUS_ERR_UNSUPPORTED);
    CHECK(last_error_contains("built without CUDA"));
    o.device = "npu";
    EXPECT(graft_model_load(model_path, &o, &m), GRAFT_STATUS_ERR_UNSUPPORTED);
    o.device = "cpu";
    o.numerics = 7;
    EXPECT(graft_model_load(model_path, &o, &m), GRAFT_STATUS_ERR_INVALID_ARGUMENT);
    o.numerics = GRAFT_NUMERICS_Q8;
    o.memory_budget = 1 << 20;
    EXPECT(graft_model_load(model_path, &o, &m), GRAFT_STATUS_ERR_MEMORY_BUDGET);
    CHECK(last_error_contains("exceeds the memory budget of 1.0 MiB"));
    CHECK(m == NULL);
}

static void test_tokenize(graft_model *m) {
    size_t n = 0;
    EXPECT(graft_tokenize(m, PROMPT, strlen(PROMPT), true, false, NULL, 0, &n), GRAFT_STATUS_ERR_BUFFER_TOO_SMALL);
    CHECK(n > 2 && n <= 64);
    uint32_t ids[64];
    size_t n2 = 0;
    OK(graft_tokenize(m, PROMPT, strlen(PROMPT), true, false, ids, 64, &n2));
    CHECK(n2 == n);
    EXPECT(graft_tokenize(m, NULL, 5, true, false, ids, 64, &n2), GRAFT_STATUS_ERR_NULL_POINTER);
    EXPECT(graft_tokenize(m, PROMPT, 5, true, false, ids, 64, NULL), GRAFT_STATUS_ERR_NULL_POINTER);
    EXPECT(graft_tokenize(m, "\xff\xfe", 2, true, false, ids, 64, &n2), GRAFT_STATUS_ERR_INVALID_ARGUMENT);
    CHECK(last_error_contains("not UTF-8"));
    EXPECT(graft_tokenize(NULL, PROMPT, 5, true, false, ids, 64, &n2), GRAFT_STATUS_ERR_NULL_POINTER);
    /* An empty text is fine, with or without a pointer. */
    OK(graft_tokenize(m, NULL, 0, false, false, NULL, 0, &n2));
    CHECK(n2 == 0);

    /* Round trip. */
    size_t len = 0;
    EXPECT(graft_detokenize(m, ids, n, NULL, 0, &len), GRAFT_STATUS_ERR_BUFFER_TOO_SMALL);
    CHECK(len == strlen(PROMPT));
    char buf[64];
    memset(buf, 'x', sizeof buf);
    EXPECT(graft_detokenize(m, ids, n, buf, len, &len), GRAFT_STATUS_ERR_BUFFER_TOO_SMALL); /* no room for the NUL */
    CHECK(buf[0] == 'x');
    OK(graft_detokenize(m, ids, n, buf, sizeof buf, &len));
    CHECK(strcmp(buf, PROMPT) == 0);
    uint32_t bad = 1u << 30;
    EXPECT(graft_detokenize(m, &bad, 1, buf, sizeof buf, &len), GRAFT_STATUS_ERR_INVALID_ARGUMENT);
    CHECK(last_error_contains("outside the vocabulary"));
    EXPECT(graft_detokenize(m, NULL, 2, buf, sizeof buf, &len), GRAFT_STATUS_ERR_NULL_POINTER);

    bool eog = true;
    graft_model_info info;
    OK(graft_model_get_info(m, &info));
    if (info.eos >= 0) {
        OK(graft_token_is_eog(m, (uint32_t)info.eos, &eog));
        CHECK(eog);
    }
    OK(graft_token_is_eog(m, ids[n - 1], &eog));
    CHECK(!eog);
    EXPECT(graft_token_is_eog(m, bad, &eog), GRAFT_STATUS_ERR_INVALID_ARGUMENT);
}

/* Evaluation, logits, and their error paths; returns the base model's logits after PROMPT. */
static float *test_eval(graft_model *m, graft_session *s, const uint32_t *ids, size_t n, size_t n_vocab) {
    size_t n_past = 99, n_ctx = 0;
    OK(graft_session_n_past(s, &n_past, &n_ctx));
    CHECK(n_past == 0 && n_ctx == 256);
    size_t got = 0;
    EXPECT(graft_session_logits(s, NULL, 0, &got), GRAFT_STATUS_ERR_INVALID_ARGUMENT); /* nothing evaluated */
    uint32_t tok = 0;
    EXPECT(graft_session_sample(s, &tok), GRAFT_STATUS_ERR_INVALID_ARGUMENT);

    OK(graft_session_eval(s, ids, n));
    OK(graft_session_n_past(s, &n_past, NULL));
    CHECK(n_past == n);
    EXPECT(graft_session_logits(s, NULL, 0, &got), GRAFT_STATUS_ERR_BUFFER_TOO_SMALL);
    CHECK(got == n_vocab);
    float small[8];
    EXPECT(graft_session_logits(s, small, 8, &got), GRAFT_STATUS_ERR_BUFFER_TOO_SMALL);
    EXPECT(graft_session_logits(s, NULL, 0, NULL), GRAFT_STATUS_ERR_NULL_POINTER);
    float *base = logits_of(s, n_vocab);

    /* Failed evaluations leave the session as it was. */
    uint32_t bad[2] = {ids[0], 1u << 30};
    EXPECT(graft_session_eval(s, bad, 2), GRAFT_STATUS_ERR_INVALID_ARGUMENT);
    EXPECT(graft_session_eval(s, NULL, 3), GRAFT_STATUS_ERR_NULL_POINTER);
    EXPECT(graft_session_eval(s, ids, 0), GRAFT_STATUS_ERR_INVALID_ARGUMENT);
    uint32_t *many = calloc(300, sizeof *many);
    EXPECT(graft_session_eval(s, many, 300), GRAFT_STATUS_ERR_CONTEXT_FULL);
    CHECK(last_error_contains("exceed the session's context of 256"));
    free(many);
    OK(graft_session_n_past(s, &n_past, NULL));
    CHECK(n_past == n);
    float *again = logits_of(s, n_vocab);
    CHECK(max_abs_diff(base, again, n_vocab) == 0.0f);
    free(again);

    /* Sampling at temperature 0 picks the arg-max. */
    OK(graft_session_set_sampler(s, 0.0f, 1.0f, 0));
    OK(graft_session_sample(s, &tok));
    CHECK(tok == argmax(base, n_vocab));
    EXPECT(graft_session_set_sampler(s, -1.0f, 1.0f, 0), GRAFT_STATUS_ERR_INVALID_ARGUMENT);
    EXPECT(graft_session_set_sampler(s, 0.5f, 0.0f, 0), GRAFT_STATUS_ERR_INVALID_ARGUMENT);

    /* Truncating forgets positions and the logits. */
    OK(graft_session_truncate(s, 0));
    OK(graft_session_n_past(s, &n_past, NULL));
    CHECK(n_past == 0);
    EXPECT(graft_session_logits(s, NULL, 0, &got), GRAFT_STATUS_ERR_INVALID_ARGUMENT);
    (void)m;
    return base;
}

static void test_generate(graft_model *m, graft_session *s, const uint32_t *ids, size_t n, const float *base, size_t n_vocab) {
    graft_generate_result r;
    collect_t *c = calloc(1, sizeof *c);
    OK(graft_generate(s, ids, n, 6, collect, c, &r));
    CHECK(r.n_prompt == n);
    CHECK(r.n_generated == c->n && c->n > 0);
    CHECK(r.stop_reason == GRAFT_STOP_REASON_MAX_TOKENS || r.stop_reason == GRAFT_STOP_REASON_END_OF_GENERATION);
    CHECK(c->tokens[0] == argmax(base, n_vocab));
    printf("generated (greedy): %s|%s\n", PROMPT, c->text);
    /* The pieces add up to the detokenized tokens; the session holds prompt + generated. */
    char text[4096];
    size_t len = 0;
    OK(graft_detokenize(m, c->tokens, c->n, text, sizeof text, &len));
    CHECK(len == c->text_len && memcmp(text, c->text, len) == 0);
    size_t n_past = 0;
    OK(graft_session_n_past(s, &n_past, NULL));
    CHECK(n_past == n + c->n);

    /* Generating on from the session's state, with no prompt, continues where it stopped. */
    collect_t *more = calloc(1, sizeof *more);
    OK(graft_generate(s, NULL, 0, 2, collect, more, &r));
    CHECK(r.n_prompt == 0 && r.n_generated == more->n);
    OK(graft_session_n_past(s, &n_past, NULL));
    CHECK(n_past == n + c->n + more->n);
    free(more);

    /* The same prompt from an empty session gives the same tokens (greedy is deterministic). */
    OK(graft_session_truncate(s, 0));
    collect_t *c2 = calloc(1, sizeof *c2);
    OK(graft_generate(s, ids, n, 6, collect, c2, NULL));
    CHECK(c2->n == c->n && memcmp(c2->tokens, c->tokens, c->n * sizeof(uint32_t)) == 0);
    free(c2);

    /* The callback stops generation: the token it refuses with is the last one. */
    OK(graft_session_truncate(s, 0));
    collect_t *stop = calloc(1, sizeof *stop);
    stop->stop_after = 2;
    OK(graft_generate(s, ids, n, 6, collect, stop, &r));
    CHECK(stop->n == 2 && r.n_generated == 2);
    CHECK(r.stop_reason == GRAFT_STOP_REASON_CALLBACK);
    CHECK(memcmp(stop->tokens, c->tokens, 2 * sizeof(uint32_t)) == 0);
    free(stop);

    /* A callback calling back into its own session is refused (busy), not a deadlock. */
    OK(graft_session_truncate(s, 0));
    collect_t *re = calloc(1, sizeof *re);
    re->reenter = s;
    re->stop_after = 1;
    re->reenter_status = GRAFT_STATUS_OK;
    OK(graft_generate(s, ids, n, 4, collect, re, &r));
    CHECK(re->reenter_status == GRAFT_STATUS_ERR_BUSY);
    CHECK(last_error_contains("in use by another call"));
    free(re);

    /* Error paths. */
    OK(graft_session_truncate(s, 0));
    EXPECT(graft_generate(s, NULL, 0, 4, collect, c, &r), GRAFT_STATUS_ERR_INVALID_ARGUMENT);
    EXPECT(graft_generate(s, NULL, 3, 4, collect, c, &r), GRAFT_STATUS_ERR_NULL_POINTER);
    EXPECT(graft_generate(NULL, ids, n, 4, collect, c, &r), GRAFT_STATUS_ERR_NULL_POINTER);
    /* No callback: tokens go into the session only. */
    OK(graft_generate(s, ids, n, 3, NULL, NULL, &r));
    CHECK(r.n_generated <= 3);
    /* Context full: a 16-position session stops there. */
    graft_session_options so;
    OK(graft_session_options_default(&so));
    so.n_ctx = (uint32_t)n + 2;
    so.temperature = 0;
    graft_session *small = NULL;
    OK(graft_session_new(m, &so, &small));
    OK(graft_generate(small, ids, n, 10, NULL, NULL, &r));
    CHECK(r.n_generated == 2 && r.stop_reason == GRAFT_STOP_REASON_CONTEXT_FULL);
    OK(graft_session_free(small));
    free(c);
}

static void test_adapters(graft_model *m, graft_session *s, const char *lora_a, const char *lora_b, const uint32_t *ids, size_t n,
                          const float *base, size_t n_vocab) {
    EXPECT(graft_adapter_load(NULL, "a", lora_a, 1.0f), GRAFT_STATUS_ERR_NULL_POINTER);
    EXPECT(graft_adapter_load(m, "a", NULL, 1.0f), GRAFT_STATUS_ERR_NULL_POINTER);
    EXPECT(graft_adapter_load(m, "a", "/nonexistent/lora.gguf", 1.0f), GRAFT_STATUS_ERR_IO);
    EXPECT(graft_adapter_load(m, "a", lora_a, NAN), GRAFT_STATUS_ERR_INVALID_ARGUMENT);
    OK(graft_adapter_load(m, "a", lora_a, 1.0f));
    EXPECT(graft_adapter_load(m, "a", lora_b, 1.0f), GRAFT_STATUS_ERR_INVALID_ARGUMENT);
    CHECK(last_error_contains("already loaded"));
    OK(graft_adapter_load(m, NULL, lora_b, 1.0f)); /* named after the file stem */

    graft_adapter_list *list = NULL;
    OK(graft_adapter_list_new(m, &list));
    size_t len = 0;
    OK(graft_adapter_list_len(list, &len));
    CHECK(len == 2);
    graft_adapter_info info;
    OK(graft_adapter_list_get(list, 0, &info));
    CHECK(strcmp(info.name, "a") == 0 && strlen(info.method) > 0 && info.params > 0 && info.scale == 1.0f && info.users == 0);
    /* "b" was named after its file stem. */
    const char *slash = strrchr(lora_b, '/');
    char name_b[256];
    snprintf(name_b, sizeof name_b, "%s", slash ? slash + 1 : lora_b);
    char *dot = strrchr(name_b, '.');
    if (dot) *dot = '\0';
    OK(graft_adapter_list_get(list, 1, &info));
    CHECK(strcmp(info.name, name_b) == 0);
    EXPECT(graft_adapter_list_get(list, 2, &info), GRAFT_STATUS_ERR_INVALID_ARGUMENT);
    EXPECT(graft_adapter_list_len(list, NULL), GRAFT_STATUS_ERR_NULL_POINTER);
    OK(graft_adapter_list_free(list));
    EXPECT(graft_adapter_list_len(list, &len), GRAFT_STATUS_ERR_INVALID_HANDLE); /* stale */
    EXPECT(graft_adapter_list_free(list), GRAFT_STATUS_ERR_INVALID_HANDLE);     /* double free */

    /* Adapter "a" on this session changes its logits. */
    const char *names_a[] = {"a"};
    OK(graft_session_set_adapters(s, names_a, NULL, 1));
    OK(graft_session_truncate(s, 0));
    OK(graft_session_eval(s, ids, n));
    float *with_a = logits_of(s, n_vocab);
    float d_a = max_abs_diff(with_a, base, n_vocab);
    CHECK(d_a > 1e-3f);

    /* Model-wide scale 0 turns it off for its users; back to 1 turns it on again. */
    OK(graft_adapter_set_scale(m, "a", 0.0f));
    OK(graft_session_truncate(s, 0));
    OK(graft_session_eval(s, ids, n));
    float *off = logits_of(s, n_vocab);
    CHECK(max_abs_diff(off, base, n_vocab) < 1e-4f);
    free(off);
    OK(graft_adapter_set_scale(m, "a", 1.0f));
    EXPECT(graft_adapter_set_scale(m, "a", INFINITY), GRAFT_STATUS_ERR_INVALID_ARGUMENT);
    EXPECT(graft_adapter_set_scale(m, "zz", 1.0f), GRAFT_STATUS_ERR_INVALID_ARGUMENT);

    /* A session scale of 0.5 lands between base and full. */
    float half = 0.5f;
    OK(graft_session_set_adapters(s, names_a, &half, 1));
    OK(graft_session_truncate(s, 0));
    OK(graft_session_eval(s, ids, n));
    float *with_half = logits_of(s, n_vocab);
    float d_half = max_abs_diff(with_half, base, n_vocab);
    CHECK(d_half > 1e-4f && d_half < d_a);
    free(with_half);

    /* Swap to "b": different from base and from "a". Another session, with no adapters, still
     * computes the base model. */
    const char *names_b[] = {name_b};
    OK(graft_session_set_adapters(s, names_b, NULL, 1));
    OK(graft_session_truncate(s, 0));
    OK(graft_session_eval(s, ids, n));
    float *with_b = logits_of(s, n_vocab);
    CHECK(max_abs_diff(with_b, base, n_vocab) > 1e-3f && max_abs_diff(with_b, with_a, n_vocab) > 1e-3f);
    free(with_b);
    graft_session *plain = NULL;
    OK(graft_session_new(m, NULL, &plain));
    OK(graft_session_eval(plain, ids, n));
    float *p = logits_of(plain, n_vocab);
    CHECK(max_abs_diff(p, base, n_vocab) == 0.0f);
    free(p);

    /* Unloading "a" while a session uses it: the session keeps it; new sets cannot name it. */
    OK(graft_session_set_adapters(plain, names_a, NULL, 1));
    OK(graft_adapter_unload(m, "a"));
    EXPECT(graft_adapter_unload(m, "a"), GRAFT_STATUS_ERR_INVALID_ARGUMENT);
    OK(graft_session_truncate(plain, 0));
    OK(graft_session_eval(plain, ids, n));
    p = logits_of(plain, n_vocab);
    CHECK(max_abs_diff(p, with_a, n_vocab) < 1e-5f);
    free(p);
    EXPECT(graft_session_set_adapters(s, names_a, NULL, 1), GRAFT_STATUS_ERR_INVALID_ARGUMENT);
    CHECK(last_error_contains("no adapter named"));
    OK(graft_adapter_list_new(m, &list));
    OK(graft_adapter_list_len(list, &len));
    CHECK(len == 1);
    OK(graft_adapter_list_free(list));

    /* Bad arguments of set_adapters leave the set unchanged. */
    EXPECT(graft_session_set_adapters(s, NULL, NULL, 1), GRAFT_STATUS_ERR_NULL_POINTER);
    const char *null_name[] = {NULL};
    EXPECT(graft_session_set_adapters(s, null_name, NULL, 1), GRAFT_STATUS_ERR_NULL_POINTER);
    float nan_scale = NAN;
    EXPECT(graft_session_set_adapters(s, names_b, &nan_scale, 1), GRAFT_STATUS_ERR_INVALID_ARGUMENT);

    /* No adapters again: the base model. */
    OK(graft_session_set_adapters(plain, NULL, NULL, 0));
    OK(graft_session_truncate(plain, 0));
    OK(graft_session_eval(plain, ids, n));
    p = logits_of(plain, n_vocab);
    CHECK(max_abs_diff(p, base, n_vocab) == 0.0f);
    free(p);
    OK(graft_session_free(plain));
    free(with_a);
}

/* Perplexity of the first `n_use` tokens of TEXT in chunks of `ctx`, with the session's adapters
 * and without. */
static void test_perplexity(graft_model *m, graft_session *s, size_t n_use, size_t ctx) {
    static uint32_t toks[1024];
    size_t n = tokenize(m, TEXT, toks, 1024);
    CHECK(n >= n_use);
    n = n_use;
    size_t before = 0, after = 0;
    OK(graft_session_n_past(s, &before, NULL));
    graft_perplexity_result with_b, base;
    OK(graft_perplexity(s, toks, n, ctx, &with_b));
    CHECK(with_b.n_chunks == n / ctx && with_b.n_scored == with_b.n_chunks * (ctx - ctx / 2 - 1));
    CHECK(with_b.ppl > 1.0 && isfinite(with_b.ppl) && with_b.err > 0.0);
    OK(graft_session_n_past(s, &after, NULL));
    CHECK(after == before); /* the session's own positions are untouched */
    OK(graft_session_set_adapters(s, NULL, NULL, 0));
    OK(graft_perplexity(s, toks, n, ctx, &base));
    CHECK(base.ppl > 1.0 && isfinite(base.ppl) && base.ppl != with_b.ppl);
    printf("perplexity (ctx %zu, %zu tokens): base %.3f, with the adapter %.3f\n", ctx, n, base.ppl, with_b.ppl);
    EXPECT(graft_perplexity(s, toks, n, 2, &base), GRAFT_STATUS_ERR_INVALID_ARGUMENT);
    EXPECT(graft_perplexity(s, toks, n, 512, &base), GRAFT_STATUS_ERR_INVALID_ARGUMENT);
    EXPECT(graft_perplexity(s, toks, ctx - 1, ctx, &base), GRAFT_STATUS_ERR_INVALID_ARGUMENT);
    EXPECT(graft_perplexity(s, toks, n, ctx, NULL), GRAFT_STATUS_ERR_NULL_POINTER);
}

static void test_handles(graft_model *m) {
    graft_session *s = NULL;
    OK(graft_session_new(m, NULL, &s));
    OK(graft_session_free(s));
    uint32_t tok = 1;
    EXPECT(graft_session_eval(s, &tok, 1), GRAFT_STATUS_ERR_INVALID_HANDLE); /* use after free */
    CHECK(last_error_contains("not a live graft_session handle"));
    EXPECT(graft_session_free(s), GRAFT_STATUS_ERR_INVALID_HANDLE); /* double free */
    /* A handle of another kind. */
    EXPECT(graft_session_eval((graft_session *)m, &tok, 1), GRAFT_STATUS_ERR_INVALID_HANDLE);
    graft_model_info info;
    EXPECT(graft_model_get_info((graft_model *)s, &info), GRAFT_STATUS_ERR_INVALID_HANDLE);
    EXPECT(graft_model_get_info(NULL, &info), GRAFT_STATUS_ERR_NULL_POINTER);
    EXPECT(graft_model_get_info(m, NULL), GRAFT_STATUS_ERR_NULL_POINTER);

    graft_session_options so;
    OK(graft_session_options_default(&so));
    so.n_ctx = 100000;
    EXPECT(graft_session_new(m, &so, &s), GRAFT_STATUS_ERR_INVALID_ARGUMENT);
    so.n_ctx = 0;
    so.top_p = 2.0f;
    EXPECT(graft_session_new(m, &so, &s), GRAFT_STATUS_ERR_INVALID_ARGUMENT);
    EXPECT(graft_session_new(m, NULL, NULL), GRAFT_STATUS_ERR_NULL_POINTER);
}

/* The budget admits the model and two sessions; the third is refused until one goes. The model
 * handle is freed before its sessions, which keep working. */
static void test_budget(const char *model_path, const graft_model_info *info, const uint32_t *ids, size_t n) {
    graft_model_options o;
    OK(graft_model_options_default(&o));
    o.threads = 1;
    o.n_ctx = 256;
    o.memory_budget = info->file_bytes + info->session_bytes * 5 / 2;
    graft_model *m = NULL;
    REQUIRE(graft_model_load(model_path, &o, &m));
    graft_session *s1 = NULL, *s2 = NULL, *s3 = NULL;
    OK(graft_session_new(m, NULL, &s1));
    OK(graft_session_new(m, NULL, &s2));
    EXPECT(graft_session_new(m, NULL, &s3), GRAFT_STATUS_ERR_MEMORY_BUDGET);
    CHECK(last_error_contains("exceeds the memory budget"));
    CHECK(s3 == NULL);
    OK(graft_session_free(s2));
    OK(graft_session_new(m, NULL, &s3));
    OK(graft_model_free(m));
    EXPECT(graft_model_free(m), GRAFT_STATUS_ERR_INVALID_HANDLE);
    OK(graft_session_eval(s3, ids, n)); /* the session keeps the model alive */
    OK(graft_session_free(s1));
    OK(graft_session_free(s3));
}

typedef struct {
    graft_model *m;
    const uint32_t *ids;
    size_t n;
    collect_t out;
    GraftStatus st;
} thread_job;

typedef struct {
    int calls;
    int stop_after;
    double first_loss, last_loss;
    graft_trainer *self;
    GraftStatus reentrant;
} train_cb_t;

static bool on_step(void *user, const graft_train_progress *p) {
    train_cb_t *c = user;
    c->calls++;
    if (c->calls == 1) {
        c->first_loss = p->loss;
        /* A call on the trainer from its own callback is refused, not a deadlock. */
        c->reentrant = graft_trainer_checkpoint(c->self, "/nonexistent/x");
    }
    c->last_loss = p->loss;
    return c->calls < c->stop_after;
}

/* Training from C on the loaded model: a VeRA adapter over a short repeated text. */
static void test_train(graft_model *m) {
    char dir[] = "/tmp/graft-capi-train-XXXXXX";
    REQUIRE(mkdtemp(dir) != NULL ? GRAFT_STATUS_OK : GRAFT_STATUS_ERR_IO);
    char data[256], ckpt[256], adapter[256];
    snprintf(data, sizeof data, "%s/data.txt", dir);
    snprintf(ckpt, sizeof ckpt, "%s/run.ckpt", dir);
    snprintf(adapter, sizeof adapter, "%s/vera.safetensors", dir);
    FILE *f = fopen(data, "w");
    REQUIRE(f != NULL ? GRAFT_STATUS_OK : GRAFT_STATUS_ERR_IO);
    for (int i = 0; i < 24; i++) fputs("The code word is ZORBLAX. ", f);
    fclose(f);

    graft_train_options o;
    REQUIRE(graft_train_options_default(&o));
    CHECK(o.steps > 0 && o.batch > 0 && o.seq_len > 0 && o.method == NULL);
    graft_trainer *t = NULL;
    EXPECT(graft_trainer_new(m, &o, &t), GRAFT_STATUS_ERR_NULL_POINTER); /* no method */
    EXPECT(graft_trainer_new(m, NULL, &t), GRAFT_STATUS_ERR_NULL_POINTER);
    o.method = "dora";
    o.data_path = data;
    EXPECT(graft_trainer_new(m, &o, &t), GRAFT_STATUS_ERR_INVALID_ARGUMENT);
    CHECK(last_error_contains("unknown method"));
    o.method = "vera";
    o.numerics = "int4";
    EXPECT(graft_trainer_new(m, &o, &t), GRAFT_STATUS_ERR_INVALID_ARGUMENT);
    CHECK(last_error_contains("options->numerics"));
    o.numerics = "f32";
    o.rank = 8;
    o.seq_len = 16;
    o.batch = 2;
    o.steps = 4;
    o.lr = 3e-2f;
    o.max_memory = 1024;
    EXPECT(graft_trainer_new(m, &o, &t), GRAFT_STATUS_ERR_MEMORY_BUDGET);
    CHECK(last_error_contains("needs about"));
    o.max_memory = 0;
    o.data_path = "/nonexistent/data.txt";
    EXPECT(graft_trainer_new(m, &o, &t), GRAFT_STATUS_ERR_IO);
    o.data_path = data;
    REQUIRE(graft_trainer_new(m, &o, &t));

    /* Two steps, the callback stopping after the second. */
    train_cb_t cb = {0, 2, 0, 0, t, GRAFT_STATUS_OK};
    uint64_t done = 0;
    OK(graft_trainer_step(t, 10, on_step, &cb, &done));
    CHECK(cb.calls == 2 && done == 2);
    CHECK(cb.reentrant == GRAFT_STATUS_ERR_BUSY);
    CHECK(isfinite(cb.first_loss) && cb.first_loss > 0.0);
    double eval = 0;
    OK(graft_trainer_eval_loss(t, &eval));
    CHECK(isfinite(eval) || isnan(eval));
    OK(graft_trainer_checkpoint(t, ckpt));
    /* The rest without a callback: never past the schedule's 4 steps. */
    OK(graft_trainer_step(t, 10, NULL, NULL, &done));
    CHECK(done == 4);
    OK(graft_trainer_save_adapter(t, adapter));
    OK(graft_trainer_free(t));
    EXPECT(graft_trainer_step(t, 1, NULL, NULL, NULL), GRAFT_STATUS_ERR_INVALID_HANDLE);

    /* Resumed from the checkpoint at step 2, it finishes at step 4. */
    o.resume_path = ckpt;
    graft_trainer *r = NULL;
    REQUIRE(graft_trainer_new(m, &o, &r));
    OK(graft_trainer_step(r, 100, NULL, NULL, &done));
    CHECK(done == 4);
    OK(graft_trainer_free(r));
    o.resume_path = NULL;

    /* The saved adapter loads like any other, and exports (VeRA folds into a GGUF LoRA). */
    OK(graft_adapter_load(m, "trained", adapter, 1.0f));
    OK(graft_adapter_unload(m, "trained"));
    char exported[256];
    snprintf(exported, sizeof exported, "%s/vera-lora.gguf", dir);
    OK(graft_adapter_export(m, adapter, "gguf-lora", exported));
    OK(graft_adapter_load(m, "exported", exported, 1.0f));
    OK(graft_adapter_unload(m, "exported"));
    EXPECT(graft_adapter_export(m, adapter, "onnx", exported), GRAFT_STATUS_ERR_INVALID_ARGUMENT);
    EXPECT(graft_adapter_export(m, "/nonexistent", "graft", exported), GRAFT_STATUS_ERR_IO);
    unlink(exported);
    unlink(data);
    unlink(ckpt);
    unlink(adapter);
    rmdir(dir);
}

static void *generate_on_own_session(void *arg) {
    thread_job *j = (thread_job *)arg;
    graft_session_options so;
    graft_session_options_default(&so);
    so.temperature = 0;
    graft_session *s = NULL;
    j->st = graft_session_new(j->m, &so, &s);
    if (j->st == GRAFT_STATUS_OK) j->st = graft_generate(s, j->ids, j->n, 3, collect, &j->out, NULL);
    graft_session_free(s);
    return NULL;
}

typedef struct {
    graft_model *m;
    const char *path;
    int cycles;
    GraftStatus st;
} swap_job;

/* Loads, rescales and unloads an adapter over and over on the shared model. */
static void *swap_adapters(void *arg) {
    swap_job *j = (swap_job *)arg;
    j->st = GRAFT_STATUS_OK;
    for (int i = 0; i < j->cycles && j->st == GRAFT_STATUS_OK; i++) {
        j->st = graft_adapter_load(j->m, "churn", j->path, 1.0f);
        if (j->st == GRAFT_STATUS_OK) j->st = graft_adapter_set_scale(j->m, "churn", 0.5f);
        if (j->st == GRAFT_STATUS_OK) j->st = graft_adapter_unload(j->m, "churn");
    }
    return NULL;
}

/* Two threads generate on sessions of one model at once while a third loads, rescales and unloads
 * an adapter on that model; each generation gets the single-threaded result. */
static void test_threads(graft_model *m, const uint32_t *ids, size_t n, const uint32_t *expected, const char *adapter) {
    thread_job *jobs = calloc(2, sizeof *jobs);
    pthread_t th[2], sw;
    swap_job swj = {m, adapter, 10, GRAFT_STATUS_OK};
    CHECK(pthread_create(&sw, NULL, swap_adapters, &swj) == 0);
    for (int i = 0; i < 2; i++) {
        jobs[i].m = m;
        jobs[i].ids = ids;
        jobs[i].n = n;
        CHECK(pthread_create(&th[i], NULL, generate_on_own_session, &jobs[i]) == 0);
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        EXPECT(jobs[i].st, GRAFT_STATUS_OK);
        CHECK(jobs[i].out.n == 3 && memcmp(jobs[i].out.tokens, expected, 3 * sizeof(uint32_t)) == 0);
    }
    pthread_join(sw, NULL);
    EXPECT(swj.st, GRAFT_STATUS_OK);
    free(jobs);
}

/* The short run: load, two adapters swapped on a session, a short generation with each, a small
 * perplexity, everything freed. */
static void smoke(const char *model_path, const char *lora_a, const char *lora_b) {
    graft_model_options o;
    REQUIRE(graft_model_options_default(&o));
    o.threads = 1;
    o.n_ctx = 64;
    graft_model *m = NULL;
    REQUIRE(graft_model_load(model_path, &o, &m));
    uint32_t ids[64];
    size_t n = tokenize(m, "Paris is", ids, 64);
    OK(graft_adapter_load(m, "a", lora_a, 1.0f));
    OK(graft_adapter_load(m, "b", lora_b, 1.0f));
    graft_session_options so;
    OK(graft_session_options_default(&so));
    so.temperature = 0;
    graft_session *s = NULL;
    REQUIRE(graft_session_new(m, &so, &s));
    const char *names[] = {"a", "b"};
    graft_generate_result r;
    for (int i = 0; i < 2; i++) {
        OK(graft_session_set_adapters(s, &names[i], NULL, 1));
        OK(graft_session_truncate(s, 0));
        collect_t *c = calloc(1, sizeof *c);
        c->stop_after = 2;
        OK(graft_generate(s, ids, n, 4, collect, c, &r));
        CHECK(r.n_generated == c->n && c->n >= 1 && c->n <= 2);
        printf("adapter %s: Paris is|%s\n", names[i], c->text);
        free(c);
    }
    OK(graft_adapter_unload(m, "a"));
    test_perplexity(m, s, 8, 8);
    OK(graft_session_free(s));
    OK(graft_model_free(m));
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    int smoke_only = argc == 5 && strcmp(argv[1], "--smoke") == 0;
    if (smoke_only) {
        argv++;
        argc--;
    }
    if (argc != 4) {
        fprintf(stderr, "usage: %s [--smoke] MODEL.gguf ADAPTER_A ADAPTER_B\n", argv[0]);
        return 2;
    }
    const char *model_path = argv[1];
    test_basics();
    if (smoke_only) {
        smoke(model_path, argv[2], argv[3]);
        printf("%d passed, %d failed\n", passed, failed);
        return failed == 0 ? 0 : 1;
    }
    test_load_errors(model_path);

    graft_model_options o;
    REQUIRE(graft_model_options_default(&o));
    o.threads = 1; /* valgrind runs threads one at a time: keep the forward pass on the caller */
    o.n_ctx = 256;
    o.device = "cpu";
    graft_model *m = NULL;
    REQUIRE(graft_model_load(model_path, &o, &m));
    graft_model_info info;
    REQUIRE(graft_model_get_info(m, &info));
    struct stat st;
    CHECK(stat(model_path, &st) == 0 && (uint64_t)st.st_size == info.file_bytes);
    CHECK(info.n_vocab >= 256 && info.n_layer > 0 && info.n_ctx == 256 && info.threads == 1 && info.session_bytes > 0);
    printf("graft %s: %u tokens, %u layers, %.1f MiB, %.1f MiB per session at n_ctx %u\n", graft_version(), info.n_vocab, info.n_layer,
           info.file_bytes / 1048576.0, info.session_bytes / 1048576.0, info.n_ctx);

    test_tokenize(m);
    uint32_t ids[64];
    size_t n = tokenize(m, PROMPT, ids, 64);

    graft_session_options so;
    REQUIRE(graft_session_options_default(&so));
    CHECK(so.temperature > 0.0f && so.top_p > 0.0f && so.n_ctx == 0);
    graft_session *s = NULL;
    REQUIRE(graft_session_new(m, &so, &s));
    float *base = test_eval(m, s, ids, n, info.n_vocab);
    test_generate(m, s, ids, n, base, info.n_vocab);

    /* The reference tokens of the threads test. */
    OK(graft_session_truncate(s, 0));
    collect_t *ref = calloc(1, sizeof *ref);
    OK(graft_generate(s, ids, n, 3, collect, ref, NULL));

    test_adapters(m, s, argv[2], argv[3], ids, n, base, info.n_vocab);
    test_perplexity(m, s, 48, 16);
    test_handles(m);
    test_threads(m, ids, n, ref->tokens, argv[2]);
    test_budget(model_path, &info, ids, n);
    test_train(m);

    free(ref);
    free(base);
    OK(graft_session_free(s));
    OK(graft_model_free(m));
    EXPECT(graft_model_get_info(m, &info), GRAFT_STATUS_ERR_INVALID_HANDLE);
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
