/*
 * graft from C, in one short program: load the default model once, generate with two adapters
 * alternately (hot-swapped on one session, the base never reloaded), then train a few VeRA steps
 * on a small text and generate with the result.
 *
 *   cc hello_graft.c -o hello_graft $(pkg-config --cflags --libs graft)
 *   ./hello_graft MODEL.gguf ADAPTER_A ADAPTER_B
 *
 * Exits 0 when every call succeeded; on an error prints graft_last_error() and exits 1.
 */
#define _POSIX_C_SOURCE 200809L
#include <graft.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TRY(call)                                                                                     \
    do {                                                                                              \
        GraftStatus st_ = (call);                                                                     \
        if (st_ != GRAFT_STATUS_OK) {                                                                 \
            fprintf(stderr, "%s failed: %s: %s\n", #call, graft_status_name((int)st_), graft_last_error()); \
            exit(1);                                                                                  \
        }                                                                                             \
    } while (0)

static bool print_piece(void *user, uint32_t token, const char *piece, size_t len) {
    (void)user, (void)token;
    fwrite(piece, 1, len, stdout);
    return true;
}

static bool on_step(void *user, const graft_train_progress *p) {
    (void)user;
    printf("  step %llu/%llu loss %.4f (%.0f tok/s)\n", (unsigned long long)p->step, (unsigned long long)p->steps, p->loss,
           p->tokens_per_second);
    return true;
}

static void generate(graft_model *m, graft_session *s, const char *prompt) {
    uint32_t ids[128];
    size_t n = 0;
    TRY(graft_tokenize(m, prompt, strlen(prompt), true, false, ids, 128, &n));
    TRY(graft_session_truncate(s, 0));
    printf("  %s", prompt);
    TRY(graft_generate(s, ids, n, 8, print_piece, NULL, NULL));
    printf("\n");
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s MODEL.gguf ADAPTER_A ADAPTER_B\n", argv[0]);
        return 2;
    }
    graft_model_options mo;
    TRY(graft_model_options_default(&mo));
    mo.n_ctx = 256;
    graft_model *m = NULL;
    TRY(graft_model_load(argv[1], &mo, &m));
    TRY(graft_adapter_load(m, "a", argv[2], 1.0f));
    TRY(graft_adapter_load(m, "b", argv[3], 1.0f));

    graft_session_options so;
    TRY(graft_session_options_default(&so));
    so.temperature = 0; /* greedy */
    graft_session *s = NULL;
    TRY(graft_session_new(m, &so, &s));
    const char *prompt = "The capital of France is";
    for (int round = 0; round < 2; round++) {
        const char *names[1] = {round % 2 == 0 ? "a" : "b"};
        TRY(graft_session_set_adapters(s, names, NULL, 1)); /* takes effect at the next token */
        printf("adapter %s:\n", names[0]);
        generate(m, s, prompt);
    }

    /* A few VeRA steps on a tiny text, then generation with the trained adapter. */
    char dir[] = "/tmp/hello-graft-XXXXXX";
    if (!mkdtemp(dir)) return 1;
    char data[256], out[256];
    snprintf(data, sizeof data, "%s/fact.txt", dir);
    snprintf(out, sizeof out, "%s/vera.safetensors", dir);
    FILE *f = fopen(data, "w");
    if (!f) return 1;
    for (int i = 0; i < 8; i++) fputs("The secret word of the graft project is Zorblax. ", f);
    fclose(f);
    graft_train_options to;
    TRY(graft_train_options_default(&to));
    to.method = "vera";
    to.data_path = data;
    to.rank = 64;
    to.steps = 3;
    to.batch = 2;
    to.seq_len = 32;
    to.lr = 2e-2f;
    graft_trainer *t = NULL;
    TRY(graft_trainer_new(m, &to, &t));
    printf("training VeRA:\n");
    TRY(graft_trainer_step(t, to.steps, on_step, NULL, NULL));
    TRY(graft_trainer_save_adapter(t, out));
    TRY(graft_trainer_free(t));
    TRY(graft_adapter_load(m, "trained", out, 1.0f));
    const char *names[1] = {"trained"};
    TRY(graft_session_set_adapters(s, names, NULL, 1));
    printf("adapter trained:\n");
    generate(m, s, "The secret word of the graft project is");

    TRY(graft_session_free(s));
    TRY(graft_model_free(m));
    unlink(data);
    unlink(out);
    rmdir(dir);
    printf("ok\n");
    return 0;
}
