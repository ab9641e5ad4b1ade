/* The C ABI's test program (run by scripts/test-c-abi.sh, also under AddressSanitizer):
 *   test_c_abi MODEL.gtm IDS_FILE TEXT_FILE TMPDIR
 * IDS_FILE: the ids gemma-tiny tokenize gives for TOKENIZE_TEXT (with <bos>), space-separated.
 * TEXT_FILE: gemma-tiny run's greedy continuation of GREEDY_PROMPT, GREEDY_TOKENS tokens.
 * Prints one "ok N - ..." / "not ok N - ..." line per check and "c-abi: P passed, F failed". */
#define _POSIX_C_SOURCE 200809L
#include <gemma_tiny.h>

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TOKENIZE_TEXT "Hello world, h\xc3\xa9llo \xf0\x9f\x98\x80"
#define GREEDY_PROMPT "Hello"
#define GREEDY_TOKENS 24
#define CONTEXT 64

static int passed, failed;

static void check(int ok, int line, const char *fmt, ...) {
    va_list args;
    printf("%s %d - ", ok ? "ok" : "not ok", passed + failed + 1);
    va_start(args, fmt);
    vprintf(fmt, args);
    va_end(args);
    printf(ok ? "\n" : " (line %d)\n", line);
    if (ok) passed++; else failed++;
}
#define CHECK(cond, ...) check((cond) != 0, __LINE__, __VA_ARGS__)

/* A failing call: the status, a matching error with a message containing `needle`; frees it. */
static void expect_error(gt_status got, gt_error *err, gt_status want, const char *needle, const char *what, int line) {
    const char *message = gt_error_message(err);
    int ok = got == want && err != NULL && gt_error_code(err) == want && message[0] != '\0' &&
             (needle == NULL || strstr(message, needle) != NULL);
    check(ok, line, "%s: status %d (want %d): %s", what, (int)got, (int)want, err ? message : "(no error)");
    gt_error_free(err);
}
#define EXPECT_ERROR(call, want, needle, what) do { gt_error *e_ = NULL; gt_status s_ = (call); \
    expect_error(s_, e_, want, needle, what, __LINE__); } while (0)
/* The calls use `&e_` as their error argument. */

static char *read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); exit(2); }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (n + 1 == cap) buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    buf[n] = '\0';
    if (size) *size = n;
    return buf;
}

static void write_file(const char *path, const char *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size) { perror(path); exit(2); }
    fclose(f);
}

/* Whether s[0..n) is complete, valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
static int valid_utf8(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i], need, min;
        unsigned long cp;
        if (c < 0x80) { i++; continue; }
        if (c >= 0xc2 && c <= 0xdf) { need = 1; cp = c & 0x1f; min = 0x80; }
        else if (c >= 0xe0 && c <= 0xef) { need = 2; cp = c & 0x0f; min = 0x800; }
        else if (c >= 0xf0 && c <= 0xf4) { need = 3; cp = c & 0x07; min = 0x10000; }
        else return 0;
        for (unsigned k = 1; k <= need; k++) {
            if (i + k >= n || (s[i + k] & 0xc0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
        i += need + 1;
    }
    return 1;
}

/* Collects a generation's pieces and checks each one. */
typedef struct {
    char text[8192];
    size_t len;
    int pieces;
    int stop_after;      /* return non-zero at this piece (0: never) */
    int bad_pieces;      /* empty, not NUL-terminated, or not whole UTF-8 characters */
    int sleep_ms;        /* per piece */
    gt_session *cancel_session; /* gt_session_cancel(this) at the first piece */
    gt_session *reenter;        /* gt_generate on this from inside the callback */
    gt_status reenter_status;
    pthread_mutex_t *mutex;     /* guards `pieces` when another thread watches it */
} collector;

static int collect(const char *piece, size_t len, void *user_data) {
    collector *c = user_data;
    if (len == 0 || piece[len] != '\0' || !valid_utf8((const unsigned char *)piece, len)) c->bad_pieces++;
    if (c->len + len < sizeof c->text) {
        memcpy(c->text + c->len, piece, len);
        c->len += len;
        c->text[c->len] = '\0';
    }
    if (c->mutex) pthread_mutex_lock(c->mutex);
    int n = ++c->pieces;
    if (c->mutex) pthread_mutex_unlock(c->mutex);
    if (c->sleep_ms) {
        struct timespec t = {0, c->sleep_ms * 1000000L};
        nanosleep(&t, NULL);
    }
    if (c->cancel_session && n == 1) gt_session_cancel(c->cancel_session);
    if (c->reenter && n == 1) {
        collector inner = {0};
        gt_error *err = NULL;
        c->reenter_status = gt_generate(c->reenter, "x", NULL, collect, &inner, &err);
        gt_error_free(err);
    }
    return c->stop_after != 0 && n >= c->stop_after;
}

static gt_options greedy(int32_t max_tokens) {
    gt_options o = gt_options_default();
    o.temperature = 0;
    o.max_tokens = max_tokens;
    return o;
}

/* Runs gt_generate and returns its status; the collector gets the text, *result the result. */
static gt_status generate(gt_session *s, const char *prompt, const gt_options *o, collector *c, gt_result *result) {
    gt_error *err = NULL;
    gt_status st = gt_generate(s, prompt, o, collect, c, &err);
    if (st != GT_OK) printf("# gt_generate: %s\n", gt_error_message(err));
    gt_error_free(err);
    memset(result, 0, sizeof *result);
    gt_session_last_result(s, result);
    return st;
}

/* ---- Threads ---- */

typedef struct {
    gt_model *model;
    const char *expected;
    int runs_ok;
    int tokenize_ok;
} worker;

static void *generate_worker(void *arg) {
    worker *w = arg;
    gt_session *s = NULL;
    if (gt_session_new(w->model, &s, NULL) != GT_OK) return NULL;
    gt_options o = greedy(GREEDY_TOKENS);
    for (int i = 0; i < 3; i++) {
        collector c = {0};
        gt_result r;
        if (generate(s, GREEDY_PROMPT, &o, &c, &r) == GT_OK && strcmp(c.text, w->expected) == 0 &&
            r.stop_reason == GT_STOP_MAX_TOKENS && c.bad_pieces == 0)
            w->runs_ok++;
    }
    gt_session_free(s);
    return NULL;
}

static void *tokenize_worker(void *arg) {
    worker *w = arg;
    for (int i = 0; i < 200; i++) {
        int32_t ids[64];
        size_t n = 0;
        if (gt_tokenize(w->model, TOKENIZE_TEXT, 1, ids, 64, &n, NULL) == GT_OK && n > 0) w->tokenize_ok++;
    }
    return NULL;
}

typedef struct {
    gt_session *session;
    collector *c;
    pthread_mutex_t *mutex;
} canceller;

static void *cancel_worker(void *arg) {
    canceller *k = arg;
    for (;;) {
        pthread_mutex_lock(k->mutex);
        int n = k->c->pieces;
        pthread_mutex_unlock(k->mutex);
        if (n >= 3) break;
        struct timespec t = {0, 1000000L};
        nanosleep(&t, NULL);
    }
    gt_session_cancel(k->session);
    return NULL;
}

/* ---- Tests ---- */

static void test_basics(void) {
    const char *v = gt_version();
    CHECK(v && strchr(v, '.') && strchr(strchr(v, '.') + 1, '.'), "gt_version is MAJOR.MINOR.PATCH: %s", v ? v : "NULL");
    gt_options o = gt_options_default();
    CHECK(o.max_tokens == 256 && o.temperature == 0.8f && o.top_k == 40 && o.top_p == 0.95f && o.min_p == 0.05f &&
              o.repeat_penalty == 1.0f && o.repeat_last_n == 64 && o.seed == GT_SEED_RANDOM && o.stop == NULL &&
              o.n_stop == 0 && o.threads == 0 && o.context_length == 0 && o.json_schema == NULL && o.json_object == 0,
          "gt_options_default has the documented defaults");
    CHECK(strcmp(gt_error_message(NULL), "") == 0 && gt_error_code(NULL) == GT_OK, "gt_error_message/code accept NULL");
    gt_error_free(NULL);
    gt_model_free(NULL);
    gt_session_free(NULL);
    gt_session_cancel(NULL);
    CHECK(gt_model_context_length(NULL) == 0, "free/cancel functions accept NULL");
    CHECK(gt_session_last_result(NULL, NULL) == GT_ERR_INVALID_ARGUMENT, "gt_session_last_result(NULL) is an error");
}

static void test_load_errors(const char *model_path, const char *tmpdir) {
    gt_model *m = (gt_model *)&m;  /* must be reset to NULL */
    EXPECT_ERROR(gt_model_load(NULL, NULL, &m, &e_), GT_ERR_INVALID_ARGUMENT, "path", "NULL path");
    CHECK(m == NULL, "the out parameter is NULL after a failure");
    EXPECT_ERROR(gt_model_load(model_path, NULL, NULL, &e_), GT_ERR_INVALID_ARGUMENT, "out", "NULL out");
    CHECK(gt_model_load("/no/such/file.gtm", NULL, &m, NULL) == GT_ERR_MODEL_LOAD, "a NULL error pointer is allowed");
    EXPECT_ERROR(gt_model_load("/no/such/file.gtm", NULL, &m, &e_), GT_ERR_MODEL_LOAD, "/no/such/file.gtm", "missing file");
    EXPECT_ERROR(gt_model_load(tmpdir, NULL, &m, &e_), GT_ERR_MODEL_LOAD, NULL, "a directory");
    EXPECT_ERROR(gt_model_load("\xff\xfe.gtm", NULL, &m, &e_), GT_ERR_INVALID_ARGUMENT, "UTF-8", "a path that is not UTF-8");

    size_t size;
    char *bytes = read_file(model_path, &size);
    char path[4096];
    struct { const char *name; size_t offset; size_t length; const char *needle; } damage[] = {
        {"not a model", 0, 0, "not a gemma-tiny model file"},
        {"empty file", 0, 0, NULL},
        {"truncated to 1000 bytes", 0, 1000, "truncated"},
        {"truncated to half", 0, 0, NULL},
        {"header bytes overwritten", 100, 8, "checksum"},
        {"metadata bytes overwritten", 300, 8, "checksum"},
    };
    for (size_t i = 0; i < sizeof damage / sizeof damage[0]; i++) {
        snprintf(path, sizeof path, "%s/damaged-%zu.gtm", tmpdir, i);
        if (i == 0) write_file(path, "hello, I am not a model\n", 24);
        else if (i == 1) write_file(path, "", 0);
        else if (i == 2) write_file(path, bytes, 1000);
        else if (i == 3) write_file(path, bytes, size / 2);
        else {
            char *copy = malloc(size);
            memcpy(copy, bytes, size);
            memset(copy + damage[i].offset, 0xa5, damage[i].length);
            write_file(path, copy, size);
            free(copy);
        }
        EXPECT_ERROR(gt_model_load(path, NULL, &m, &e_), GT_ERR_MODEL_LOAD, damage[i].needle, damage[i].name);
    }
    free(bytes);

    /* Invalid options, checked at load. */
    const char *bad_utf8[] = {"ok", "\xc3"};
    const char *null_entry[] = {NULL};
    struct { const char *name; gt_options o; } cases[16];
    int n = 0;
    gt_options o;
#define BAD(label, field, value) o = gt_options_default(); o.field = value; cases[n].name = label; cases[n++].o = o
    BAD("temperature -1", temperature, -1.0f);
    BAD("temperature NaN", temperature, NAN);
    BAD("top_p 0", top_p, 0.0f);
    BAD("top_p 1.5", top_p, 1.5f);
    BAD("min_p 2", min_p, 2.0f);
    BAD("top_k -1", top_k, -1);
    BAD("max_tokens -2", max_tokens, -2);
    BAD("repeat_penalty 0", repeat_penalty, 0.0f);
    BAD("repeat_last_n -1", repeat_last_n, -1);
    BAD("threads -1", threads, -1);
    BAD("context_length -1", context_length, -1);
    BAD("context_length over the model's maximum", context_length, 1 << 30);
    BAD("stop NULL with n_stop 1", n_stop, 1);
    o.stop = NULL;
    cases[n - 1].o = o;
#undef BAD
    for (int i = 0; i < n; i++)
        EXPECT_ERROR(gt_model_load(model_path, &cases[i].o, &m, &e_), GT_ERR_INVALID_OPTIONS, NULL, cases[i].name);
    o = gt_options_default();
    o.stop = bad_utf8;
    o.n_stop = 2;
    EXPECT_ERROR(gt_model_load(model_path, &o, &m, &e_), GT_ERR_INVALID_OPTIONS, "stop[1]", "a stop string not UTF-8");
    o.stop = null_entry;
    o.n_stop = 1;
    EXPECT_ERROR(gt_model_load(model_path, &o, &m, &e_), GT_ERR_INVALID_OPTIONS, "stop[0]", "a NULL stop string");
    o.stop = NULL;
    o.n_stop = (size_t)-1;
    EXPECT_ERROR(gt_model_load(model_path, &o, &m, &e_), GT_ERR_INVALID_OPTIONS, "n_stop", "n_stop SIZE_MAX");

    /* Structured-output options. */
    struct { const char *schema; int32_t object; const char *needle; const char *name; } formats[] = {
        {"{\"type\": \"string\", \"pattern\": \"^a\"}", 0, "pattern", "json_schema with an unsupported keyword"},
        {"{\"type\": ", 0, "not valid JSON", "json_schema that is not JSON"},
        {"{\"type\": \"\xff\"}", 0, "UTF-8", "json_schema not UTF-8"},
        {"{\"type\": \"object\"}", 1, "both", "json_schema and json_object together"},
    };
    for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++) {
        o = gt_options_default();
        o.json_schema = formats[i].schema;
        o.json_object = formats[i].object;
        EXPECT_ERROR(gt_model_load(model_path, &o, &m, &e_), GT_ERR_INVALID_OPTIONS, formats[i].needle, formats[i].name);
    }
}

/* Structured output reaches the engine. (The fixture model's random weights rarely close a
 * JSON object within the context, so the schema asks for a short value: an enum.) */
static void test_structured(gt_model *model) {
    gt_session *s = NULL;
    gt_session_new(model, &s, NULL);
    gt_options o = greedy(40);
    o.json_schema = "{\"enum\": [\"red\", \"green\", 42, true]}";
    collector c = {0};
    gt_result r;
    gt_status st = generate(s, "Pick one:", &o, &c, &r);
    const char *v = c.text + strspn(c.text, " \t\n\r");
    int one_of = strcmp(v, "\"red\"") == 0 || strcmp(v, "\"green\"") == 0 || strcmp(v, "42") == 0 || strcmp(v, "true") == 0;
    CHECK(st == GT_OK && one_of && r.stop_reason == GT_STOP_RESPONSE_COMPLETE,
          "json_schema (an enum): the reply [%s] is one of its values, GT_STOP_RESPONSE_COMPLETE (%d)", c.text,
          (int)r.stop_reason);
    o = greedy(8);
    o.json_object = 1;
    memset(&c, 0, sizeof c);
    st = generate(s, "Reply in JSON:", &o, &c, &r);
    CHECK(st == GT_OK && c.text[strspn(c.text, " \t\n\r")] == '{' && c.bad_pieces == 0,
          "json_object: the reply starts an object: [%s]", c.text);
    gt_session_free(s);
}

static void test_generation(gt_model *model, const char *expected) {
    gt_session *s = NULL;
    gt_error *err = NULL, *old = NULL;
    gt_model_load("/no/such/file.gtm", NULL, NULL, &old);  /* a real error object to overwrite */
    err = old;
    CHECK(gt_session_new(model, &s, &err) == GT_OK && s != NULL && err == NULL, "gt_session_new; *error set to NULL on success");
    gt_error_free(old);
    gt_session *dummy;
    EXPECT_ERROR(gt_session_new(NULL, &dummy, &e_), GT_ERR_INVALID_ARGUMENT, "model", "gt_session_new(NULL model)");
    EXPECT_ERROR(gt_session_new(model, NULL, &e_), GT_ERR_INVALID_ARGUMENT, "out", "gt_session_new(NULL out)");

    gt_result r;
    CHECK(gt_session_last_result(s, &r) == GT_OK && r.stop_reason == GT_STOP_NONE && r.completion_tokens == 0,
          "last result before any generation: GT_STOP_NONE");

    /* NULL arguments and invalid UTF-8. */
    collector c = {0};
    gt_options o = greedy(GREEDY_TOKENS);
    EXPECT_ERROR(gt_generate(NULL, "x", &o, collect, &c, &e_), GT_ERR_INVALID_ARGUMENT, "session", "gt_generate(NULL session)");
    EXPECT_ERROR(gt_generate(s, NULL, &o, collect, &c, &e_), GT_ERR_INVALID_ARGUMENT, "prompt", "gt_generate(NULL prompt)");
    EXPECT_ERROR(gt_generate(s, "x", &o, NULL, &c, &e_), GT_ERR_INVALID_ARGUMENT, "callback", "gt_generate(NULL callback)");
    const char *invalid[] = {"\xff", "abc\xc3", "\xc0\xaf overlong", "\xed\xa0\x80 surrogate", "\xf4\x90\x80\x80 > U+10FFFF"};
    for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++)
        EXPECT_ERROR(gt_generate(s, invalid[i], &o, collect, &c, &e_), GT_ERR_INVALID_ARGUMENT, "UTF-8", "invalid UTF-8 prompt");
    gt_options bad = greedy(4);
    bad.temperature = -0.5f;
    EXPECT_ERROR(gt_generate(s, "x", &bad, collect, &c, &e_), GT_ERR_INVALID_OPTIONS, "temperature", "negative temperature");
    CHECK(c.pieces == 0, "no callback for a refused generation");

    /* A prompt longer than the context. */
    char long_prompt[4096] = "";
    for (int i = 0; i < 200; i++) strcat(long_prompt, "word ");
    EXPECT_ERROR(gt_generate(s, long_prompt, &o, collect, &c, &e_), GT_ERR_PROMPT_TOO_LONG, "64", "prompt longer than the context");
    CHECK(c.pieces == 0 && gt_session_last_result(s, &r) == GT_OK && r.stop_reason == GT_STOP_NONE,
          "no callback and GT_STOP_NONE after the too-long prompt");

    /* Greedy text = gemma-tiny run's. */
    memset(&c, 0, sizeof c);
    CHECK(generate(s, GREEDY_PROMPT, &o, &c, &r) == GT_OK, "greedy generation");
    CHECK(strcmp(c.text, expected) == 0, "greedy text equals gemma-tiny run's: [%s] vs [%s]", c.text, expected);
    CHECK(c.bad_pieces == 0 && c.pieces > 0, "%d pieces, each non-empty, NUL-terminated, whole UTF-8 characters", c.pieces);
    CHECK(r.stop_reason == GT_STOP_MAX_TOKENS && r.completion_tokens == GREEDY_TOKENS && r.prompt_tokens == 5,
          "result: max_tokens, %zu prompt and %zu generated tokens", r.prompt_tokens, r.completion_tokens);
    memset(&c, 0, sizeof c);
    gt_status st = generate(s, GREEDY_PROMPT, &o, &c, &r);
    CHECK(st == GT_OK && strcmp(c.text, expected) == 0 && r.cached_prompt_tokens == r.prompt_tokens - 1,
          "the same prompt again: same text, %zu of %zu prompt tokens from the cache", r.cached_prompt_tokens, r.prompt_tokens);

    /* A call refused by its checks is a failed generation: the last result is all zero again,
       not the previous success's (whatever the check: options, the prompt's UTF-8). */
    EXPECT_ERROR(gt_generate(s, "x", &bad, collect, &c, &e_), GT_ERR_INVALID_OPTIONS, "temperature", "negative temperature again");
    CHECK(gt_session_last_result(s, &r) == GT_OK && r.stop_reason == GT_STOP_NONE && r.prompt_tokens == 0 &&
              r.completion_tokens == 0, "after a refused call the last result is all zero (stop reason %d)", (int)r.stop_reason);
    CHECK(generate(s, GREEDY_PROMPT, &o, &c, &r) == GT_OK && r.stop_reason == GT_STOP_MAX_TOKENS, "a success again");
    EXPECT_ERROR(gt_generate(s, "\xff", &o, collect, &c, &e_), GT_ERR_INVALID_ARGUMENT, "UTF-8", "invalid UTF-8 prompt again");
    CHECK(gt_session_last_result(s, &r) == GT_OK && r.stop_reason == GT_STOP_NONE && r.completion_tokens == 0,
          "after a prompt that is not UTF-8 the last result is all zero");

    /* Stop from the callback. */
    memset(&c, 0, sizeof c);
    c.stop_after = 5;
    st = generate(s, GREEDY_PROMPT, &o, &c, &r);
    CHECK(st == GT_OK && c.pieces == 5 && r.stop_reason == GT_STOP_CANCELLED,
          "callback returning 1 at piece 5: exactly 5 pieces, GT_STOP_CANCELLED (%d)", (int)r.stop_reason);
    CHECK(strncmp(c.text, expected, c.len) == 0 && r.completion_tokens >= 5 && r.completion_tokens < GREEDY_TOKENS,
          "the pieces so far are the greedy text's start; %zu tokens counted", r.completion_tokens);

    /* gt_session_cancel from the callback, and from another thread. */
    memset(&c, 0, sizeof c);
    c.cancel_session = s;
    CHECK(generate(s, GREEDY_PROMPT, &o, &c, &r) == GT_OK && c.pieces == 1 && r.stop_reason == GT_STOP_CANCELLED,
          "gt_session_cancel in the callback: 1 piece, GT_STOP_CANCELLED");
    pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
    memset(&c, 0, sizeof c);
    c.sleep_ms = 5;
    c.mutex = &mutex;
    canceller k = {s, &c, &mutex};
    pthread_t thread;
    pthread_create(&thread, NULL, cancel_worker, &k);
    gt_options unlimited = greedy(-1);
    st = generate(s, GREEDY_PROMPT, &unlimited, &c, &r);
    pthread_join(thread, NULL);
    CHECK(st == GT_OK && r.stop_reason == GT_STOP_CANCELLED && c.pieces >= 3 && c.pieces < 20,
          "gt_session_cancel from another thread: stopped after %d pieces", c.pieces);

    /* A second generation on a busy session. */
    memset(&c, 0, sizeof c);
    c.reenter = s;
    o = greedy(4);
    st = generate(s, GREEDY_PROMPT, &o, &c, &r);
    CHECK(st == GT_OK && c.reenter_status == GT_ERR_SESSION_BUSY,
          "gt_generate on the same session from its callback: GT_ERR_SESSION_BUSY (%d)", (int)c.reenter_status);

    /* Stop strings, max_tokens 0, the context filling up. */
    const char *space = strchr(expected + strlen(expected) / 2, ' ');
    if (space && space[1] && space[2] && (unsigned char)space[1] < 0x80 && (unsigned char)space[2] < 0x80) {
        char stop[4] = {space[0], space[1], space[2], 0};
        const char *stops[] = {"never appears", stop};
        o = greedy(GREEDY_TOKENS);
        o.stop = stops;
        o.n_stop = 2;
        memset(&c, 0, sizeof c);
        size_t want = (size_t)(strstr(expected, stop) - expected);
        CHECK(generate(s, GREEDY_PROMPT, &o, &c, &r) == GT_OK && r.stop_reason == GT_STOP_STOP_STRING &&
                  c.len == want && strncmp(c.text, expected, want) == 0,
              "stop string \"%s\": text up to it, GT_STOP_STOP_STRING", stop);
    } else {
        CHECK(1, "# skip: no ASCII stop string in the greedy text");
    }
    o = greedy(0);
    memset(&c, 0, sizeof c);
    CHECK(generate(s, GREEDY_PROMPT, &o, &c, &r) == GT_OK && c.pieces == 0 && r.stop_reason == GT_STOP_MAX_TOKENS &&
              r.completion_tokens == 0, "max_tokens 0: nothing generated");
    memset(&c, 0, sizeof c);
    st = generate(s, GREEDY_PROMPT, &unlimited, &c, &r);
    CHECK(st == GT_OK && r.stop_reason == GT_STOP_CONTEXT_FULL &&
              r.prompt_tokens + r.completion_tokens >= CONTEXT && c.bad_pieces == 0,
          "max_tokens -1: runs until the %d-token context is full (%zu generated)", CONTEXT, r.completion_tokens);

    /* Sampling with a seed is reproducible. */
    o = gt_options_default();
    o.max_tokens = 16;
    o.seed = 42;
    collector a = {0}, b = {0};
    gt_result ra, rb;
    CHECK(generate(s, GREEDY_PROMPT, &o, &a, &ra) == GT_OK && generate(s, GREEDY_PROMPT, &o, &b, &rb) == GT_OK &&
              strcmp(a.text, b.text) == 0 && ra.seed == 42 && rb.seed == 42,
          "seed 42 twice: the same sampled text");
    gt_session_free(s);
}

static void test_chat(gt_model *model) {
    gt_session *s = NULL;
    gt_session_new(model, &s, NULL);
    gt_message messages[4] = {
        {"system", "Answer briefly."},
        {"user", "Hello there"},
        {"assistant", "Hi"},
        {"user", "How are you?"},
    };
    gt_options o = greedy(8);
    collector c = {0};
    gt_result r;
    gt_error *err = NULL;
    gt_status st = gt_chat(s, messages, 2, &o, collect, &c, &err);
    if (st != GT_OK) printf("# %s\n", gt_error_message(err));
    gt_error_free(err);
    gt_session_last_result(s, &r);
    CHECK(st == GT_OK && r.prompt_tokens > 5 && r.completion_tokens > 0 && c.bad_pieces == 0 &&
              (r.stop_reason == GT_STOP_MAX_TOKENS || r.stop_reason == GT_STOP_END_OF_TURN || r.stop_reason == GT_STOP_END_OF_SEQUENCE),
          "gt_chat: system + user (%zu prompt tokens, stop reason %d)", r.prompt_tokens, (int)r.stop_reason);
    size_t first_prompt = r.prompt_tokens;
    memset(&c, 0, sizeof c);
    messages[2].role = "model";
    st = gt_chat(s, messages, 4, &o, collect, &c, NULL);
    gt_session_last_result(s, &r);
    CHECK(st == GT_OK && r.prompt_tokens > first_prompt && r.cached_prompt_tokens >= first_prompt - 1,
          "gt_chat: the next turn reuses the cache (%zu of %zu prompt tokens cached; role \"model\" accepted)",
          r.cached_prompt_tokens, r.prompt_tokens);

    gt_message bad_role[1] = {{"robot", "hi"}};
    gt_message null_content[1] = {{"user", NULL}};
    gt_message null_role[1] = {{NULL, "hi"}};
    gt_message bad_text[1] = {{"user", "\xe2\x82"}};
    EXPECT_ERROR(gt_chat(s, bad_role, 1, &o, collect, &c, &e_), GT_ERR_INVALID_ARGUMENT, "robot", "unknown role");
    EXPECT_ERROR(gt_chat(s, null_content, 1, &o, collect, &c, &e_), GT_ERR_INVALID_ARGUMENT, "content", "NULL content");
    EXPECT_ERROR(gt_chat(s, null_role, 1, &o, collect, &c, &e_), GT_ERR_INVALID_ARGUMENT, "role", "NULL role");
    EXPECT_ERROR(gt_chat(s, bad_text, 1, &o, collect, &c, &e_), GT_ERR_INVALID_ARGUMENT, "UTF-8", "content not UTF-8");
    EXPECT_ERROR(gt_chat(s, NULL, 1, &o, collect, &c, &e_), GT_ERR_INVALID_ARGUMENT, "messages", "NULL messages");
    EXPECT_ERROR(gt_chat(s, messages, 0, &o, collect, &c, &e_), GT_ERR_CHAT, "no messages", "no messages");
    EXPECT_ERROR(gt_chat(s, messages, (size_t)-1, &o, collect, &c, &e_), GT_ERR_INVALID_ARGUMENT, "n_messages",
                 "n_messages SIZE_MAX: out of range, not \"no messages\"");
    EXPECT_ERROR(gt_chat(NULL, messages, 2, &o, collect, &c, &e_), GT_ERR_INVALID_ARGUMENT, "session", "NULL session");
    EXPECT_ERROR(gt_chat(s, messages, 2, &o, NULL, &c, &e_), GT_ERR_INVALID_ARGUMENT, "callback", "NULL callback");
    gt_session_free(s);
}

static void test_tokenize(gt_model *model, const char *ids_file) {
    char *text = read_file(ids_file, NULL);
    int32_t want[256];
    size_t n_want = 0;
    for (char *p = strtok(text, " \n"); p && n_want < 256; p = strtok(NULL, " \n")) want[n_want++] = atoi(p);
    free(text);

    size_t n = 0;
    EXPECT_ERROR(gt_tokenize(model, TOKENIZE_TEXT, 1, NULL, 0, &n, &e_), GT_ERR_BUFFER_TOO_SMALL, "capacity",
                 "capacity 0: GT_ERR_BUFFER_TOO_SMALL");
    CHECK(n == n_want, "capacity 0: n_out = the count needed (%zu, gemma-tiny tokenize: %zu)", n, n_want);
    int32_t ids[256];
    for (int i = 0; i < 256; i++) ids[i] = -7;
    EXPECT_ERROR(gt_tokenize(model, TOKENIZE_TEXT, 1, ids, n_want - 1, &n, &e_), GT_ERR_BUFFER_TOO_SMALL, NULL,
                 "capacity one short");
    CHECK(ids[0] == -7 && n == n_want, "nothing written when the ids do not fit");
    gt_status st = gt_tokenize(model, TOKENIZE_TEXT, 1, ids, n_want, &n, NULL);
    CHECK(st == GT_OK && n == n_want &&
              memcmp(ids, want, n * sizeof ids[0]) == 0 && ids[n_want] == -7,
          "ids with <bos> equal gemma-tiny tokenize's (%zu ids)", n);
    CHECK(gt_tokenize(model, TOKENIZE_TEXT, 0, ids, 256, &n, NULL) == GT_OK && n == n_want - 1 &&
              memcmp(ids, want + 1, n * sizeof ids[0]) == 0,
          "add_bos 0: the same ids without <bos>");
    CHECK(gt_tokenize(model, "", 0, NULL, 0, &n, NULL) == GT_OK && n == 0, "empty text, no <bos>: 0 ids, out may be NULL");
    CHECK(gt_tokenize(model, TOKENIZE_TEXT, 1, ids, (size_t)-1, &n, NULL) == GT_OK && n == n_want &&
              memcmp(ids, want, n * sizeof ids[0]) == 0, "capacity SIZE_MAX (\"big enough\"): the ids");
    EXPECT_ERROR(gt_tokenize(NULL, "x", 1, ids, 256, &n, &e_), GT_ERR_INVALID_ARGUMENT, "model", "NULL model");
    EXPECT_ERROR(gt_tokenize(model, NULL, 1, ids, 256, &n, &e_), GT_ERR_INVALID_ARGUMENT, "text", "NULL text");
    EXPECT_ERROR(gt_tokenize(model, "x", 1, ids, 256, NULL, &e_), GT_ERR_INVALID_ARGUMENT, "n_out", "NULL n_out");
    EXPECT_ERROR(gt_tokenize(model, "x", 1, NULL, 256, &n, &e_), GT_ERR_INVALID_ARGUMENT, "out", "NULL out with capacity");
    EXPECT_ERROR(gt_tokenize(model, "\x80", 1, ids, 256, &n, &e_), GT_ERR_INVALID_ARGUMENT, "UTF-8", "text not UTF-8");
}

static void test_threads(gt_model *model, const char *expected) {
    /* Six generating threads: more than the 4 generations the engine interleaves (the others
     * wait their turn), and a seventh thread tokenizing meanwhile. */
    enum { GENERATORS = 6 };
    worker w[GENERATORS + 1];
    pthread_t t[GENERATORS + 1];
    for (int i = 0; i <= GENERATORS; i++) {
        w[i] = (worker){model, expected, 0, 0};
        pthread_create(&t[i], NULL, i < GENERATORS ? generate_worker : tokenize_worker, &w[i]);
    }
    int runs_ok = 0;
    for (int i = 0; i <= GENERATORS; i++) {
        pthread_join(t[i], NULL);
        if (i < GENERATORS) runs_ok += w[i].runs_ok;
    }
    CHECK(runs_ok == 3 * GENERATORS, "%d sessions of one model in %d threads: %d of %d greedy runs equal the "
          "single-thread text", GENERATORS, GENERATORS, runs_ok, 3 * GENERATORS);
    CHECK(w[GENERATORS].tokenize_ok == 200, "gt_tokenize from another thread meanwhile: %d of 200",
          w[GENERATORS].tokenize_ok);
}

static void test_lifetimes(const char *model_path, const char *expected) {
    gt_options o = greedy(3);  /* the model's defaults: used when a generation passes NULL */
    gt_model *m = NULL;
    gt_session *s = NULL;
    gt_error *err = NULL;
    gt_status st = gt_model_load(model_path, &o, &m, &err);
    if (st == GT_OK) st = gt_session_new(m, &s, &err);
    CHECK(st == GT_OK, "load and session (%s)", gt_error_message(err));
    gt_error_free(err);
    CHECK(gt_model_context_length(m) == 512, "context_length 0 = the model's maximum (%zu)", gt_model_context_length(m));
    gt_model_free(m);  /* the session keeps it loaded */
    collector c = {0};
    gt_result r;
    CHECK(generate(s, GREEDY_PROMPT, NULL, &c, &r) == GT_OK && r.completion_tokens == 3 &&
              strncmp(c.text, expected, c.len) == 0,
          "after gt_model_free the session still generates; NULL options = the load options (3 tokens)");
    gt_session_free(s);  /* unloads the model */
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s MODEL.gtm IDS_FILE TEXT_FILE TMPDIR\n", argv[0]);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    char *expected = read_file(argv[3], NULL);
    test_basics();
    test_load_errors(argv[1], argv[4]);

    gt_options o = gt_options_default();
    o.context_length = CONTEXT;
    gt_model *model = NULL;
    gt_error *err = NULL;
    if (gt_model_load(argv[1], &o, &model, &err) != GT_OK) {
        printf("Bail out! cannot load %s: %s\n", argv[1], gt_error_message(err));
        return 1;
    }
    CHECK(gt_model_context_length(model) == CONTEXT, "context_length %d at load", CONTEXT);
    test_generation(model, expected);
    test_chat(model);
    test_structured(model);
    test_tokenize(model, argv[2]);
    test_threads(model, expected);
    gt_model_free(model);
    test_lifetimes(argv[1], expected);
    free(expected);
    printf("c-abi: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
