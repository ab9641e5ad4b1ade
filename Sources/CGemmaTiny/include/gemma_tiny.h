/*
 * gemma_tiny.h: the C interface of gemma-tiny (libgemmatiny.so / libgemmatiny.a).
 *
 * Runs Google's Gemma models from a gemma-tiny model file (.gtm, made by gemma-quantize). One
 * model is loaded once and shared; each conversation gets a session with a KV cache of its own.
 * Text is streamed to a callback piece by piece as it is generated.
 *
 *     gt_model *model; gt_session *session; gt_error *err = NULL;
 *     if (gt_model_load("model.gtm", NULL, &model, &err) != GT_OK) {
 *         fprintf(stderr, "%s\n", gt_error_message(err)); gt_error_free(err); return 1;
 *     }
 *     gt_session_new(model, &session, NULL);
 *     gt_generate(session, "The capital of France is", NULL, print_piece, NULL, NULL);
 *     gt_session_free(session); gt_model_free(model);
 *
 * Build: cc app.c $(pkg-config --cflags --libs gemma-tiny)   (C99 or later, or C++)
 *
 * CONVENTIONS
 *   - Every function that can fail returns a gt_status: GT_OK (0) on success, else an error
 *     code. Its last parameter, `gt_error **error`, may be NULL (ignore the details); otherwise
 *     *error is set to NULL on success and to a new gt_error on failure, which the caller frees
 *     with gt_error_free. Out parameters (`gt_model **out`...) are set to NULL on failure.
 *   - Nothing is ever a crash or an exit: NULL pointers, a missing or damaged file, invalid
 *     UTF-8, a prompt longer than the context, out-of-range options are all errors.
 *     (Passing a pointer to freed memory or to something of the wrong type is still undefined.)
 *   - Strings in are NUL-terminated UTF-8; strings out are NUL-terminated UTF-8 owned by the
 *     library, valid as documented for each.
 *
 * THREAD SAFETY
 *   - A gt_model may be used from any number of threads at once: gt_session_new, gt_tokenize
 *     and the generations of its sessions. Generations of different sessions run concurrently:
 *     the model's single compute thread interleaves them one token at a time (at most 4 at once;
 *     more wait their turn, first come first served).
 *   - A gt_session is used by one thread at a time. A second gt_generate / gt_chat on a session
 *     while one is running (from another thread, or from inside its own callback) does not
 *     wait and does not corrupt anything: it fails at once with GT_ERR_SESSION_BUSY.
 *     gt_session_cancel is the exception: any thread may call it at any time.
 *   - gt_generate / gt_chat block the calling thread until the generation ends; its callback
 *     runs on that thread, never on another one. A callback may call any function of this API
 *     except gt_session_free on its own session (undefined); it must return normally (no
 *     longjmp or C++ exception through the library).
 *   - gt_session_free / gt_model_free must not race with other calls on the same object (as
 *     for free()). gt_model_free may be called while sessions of the model are alive: the model
 *     stays loaded until its last session is freed.
 *   - gt_error values belong to the caller and may be read or freed on any thread.
 */
#ifndef GEMMA_TINY_H
#define GEMMA_TINY_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Version -------------------------------------------------------------------------- */

/* The library's version, "MAJOR.MINOR.PATCH" (a static string: never free it). Before 1.0 the
 * ABI may change between minor versions: rebuild against the matching header. */
const char *gt_version(void);

/* ---- Status codes and errors ---------------------------------------------------------- */

typedef enum gt_status {
    GT_OK = 0,
    /* A NULL pointer where one is required, invalid UTF-8, an unknown chat role. */
    GT_ERR_INVALID_ARGUMENT = 1,
    /* An option out of range (negative temperature, top_p outside (0, 1], ...). */
    GT_ERR_INVALID_OPTIONS = 2,
    /* The model file cannot be used: missing, unreadable, damaged, not a model, unsupported. */
    GT_ERR_MODEL_LOAD = 3,
    /* The prompt (with <bos> and the chat template) has more tokens than the context. */
    GT_ERR_PROMPT_TOO_LONG = 4,
    /* gt_tokenize: the output array is too small; *n_out holds the count needed. */
    GT_ERR_BUFFER_TOO_SMALL = 5,
    /* A gt_generate / gt_chat is already running on this session. */
    GT_ERR_SESSION_BUSY = 6,
    /* gt_chat: the messages are empty, or the model's vocabulary has no chat template. */
    GT_ERR_CHAT = 7,
    /* A session's KV cache cannot be made (out of memory). */
    GT_ERR_SESSION_CREATION = 8,
    /* The model failed while running: its weights compute a NaN or infinite logit (a damaged
     * file; the message says so; `gemma-quantize verify` finds the tensor), or anything else
     * (should not happen). */
    GT_ERR_INTERNAL = 9
} gt_status;

/* An error: a status code and a one-line message naming what is wrong (the file, the option,
 * the limit). Made by the library, owned by the caller: free it with gt_error_free. */
typedef struct gt_error gt_error;

/* The error's message (UTF-8, no trailing newline). Valid until gt_error_free(error).
 * NULL gives "" (an empty string). */
const char *gt_error_message(const gt_error *error);

/* The error's status code; GT_OK for NULL. */
gt_status gt_error_code(const gt_error *error);

/* Frees an error. NULL is allowed (does nothing). */
void gt_error_free(gt_error *error);

/* ---- Options -------------------------------------------------------------------------- */

/* gt_options.seed: take a fresh random seed from the system for each generation. */
#define GT_SEED_RANDOM UINT64_MAX

/* How to load a model and how to generate. Always start from gt_options_default() and change
 * the fields you need. The struct is copied by every call that takes it: the caller keeps
 * ownership of it and of the strings it points to, which need to live only during the call.
 *
 * Load-time fields (threads, context_length) are read by gt_model_load only. The other fields
 * are read by gt_generate / gt_chat; gt_model_load checks them too and keeps them as the
 * model's defaults, used when a generation's options pointer is NULL. */
typedef struct gt_options {
    /* Most tokens to generate (the final <eos> / <end_of_turn> included); -1 = no limit
     * (until a stop condition or a full context). Default 256. Less than -1 is an error. */
    int32_t max_tokens;
    /* Sampling temperature, finite and >= 0; 0 = greedy (always the most likely token).
     * Default 0.8. */
    float temperature;
    /* Keep only the k most likely tokens; 0 = off. >= 0. Default 40. */
    int32_t top_k;
    /* Keep the most likely tokens whose probabilities sum to top_p; in (0, 1], 1 = off.
     * Default 0.95. */
    float top_p;
    /* Drop tokens less likely than min_p times the most likely one; in [0, 1], 0 = off.
     * Default 0.05. */
    float min_p;
    /* Penalty for tokens among the last repeat_last_n ones; finite and > 0, 1 = off.
     * Default 1. */
    float repeat_penalty;
    /* How many recent tokens the penalty looks at; >= 0. Default 64. */
    int32_t repeat_last_n;
    /* Seed of the sampler: the same seed, prompt and options give the same text. Default
     * GT_SEED_RANDOM (a fresh seed every time; gt_result.seed tells which one was used). */
    uint64_t seed;
    /* Stop strings: generation ends when the text contains one of them (matched across token
     * boundaries); the stop string and what follows are not passed to the callback. `stop`
     * points to n_stop NUL-terminated UTF-8 strings (none of them NULL; empty ones are
     * ignored). NULL / 0 = none (the default). */
    const char *const *stop;
    size_t n_stop;
    /* Load time: threads for the matrix products; 0 = one per core (the default). >= 0. */
    int32_t threads;
    /* Load time: KV-cache positions of the model's sessions (prompt plus reply must fit);
     * 0 = the model's maximum (the default). A session reserves this much address space but
     * uses memory only for the positions it fills. 0 to the model's maximum. The cache holds
     * keys and values as IEEE halves (f16, as llama.cpp's default: 2 bytes an element). */
    int32_t context_length;
    /* Structured output: a JSON Schema (its JSON text, UTF-8). The reply is then one JSON value
     * that validates against it, enforced while decoding (tokens that cannot continue a valid
     * reply are never sampled). Keywords: type, properties, required, additionalProperties,
     * items, minItems, maxItems, enum, const, anyOf, $ref (to "#", "#/$defs/NAME",
     * "#/definitions/NAME") and the annotations (title, description, default, examples, $schema,
     * $id, $comment, $defs, definitions); any other keyword, or text that is not JSON, is
     * GT_ERR_INVALID_OPTIONS with a message naming it. The reply ends with
     * GT_STOP_RESPONSE_COMPLETE (or GT_STOP_END_OF_TURN / _END_OF_SEQUENCE) when the value is
     * complete; GT_STOP_MAX_TOKENS or GT_STOP_CONTEXT_FULL mean it was cut short and is not
     * valid JSON. Stop strings still apply. NULL = free text (the default). */
    const char *json_schema;
    /* Structured output: non-zero = the reply is one JSON object (any keys and values), as
     * for json_schema. Not together with json_schema. Default 0. */
    int32_t json_object;
} gt_options;

/* The defaults, as documented for each field (those of llama.cpp). */
gt_options gt_options_default(void);

/* ---- Models --------------------------------------------------------------------------- */

/* A loaded model: weights (memory-mapped once), tokenizer, chat template, compute thread. */
typedef struct gt_model gt_model;

/* Loads a gemma-tiny model file, mapped as it is (a default file's few zstd-compressed tensors,
 * its norms, are decompressed into memory). A file compressed throughout (gemma-quantize
 * --compress always) is unpacked once to "PATH.unpacked" beside it (into memory when that cannot
 * be written); later loads map that directly.
 *   path     the .gtm file (not NULL)
 *   options  load options and the model's default generation options; NULL = defaults
 *   out      receives the model (not NULL); free it with gt_model_free
 * Errors: GT_ERR_INVALID_ARGUMENT, GT_ERR_INVALID_OPTIONS, GT_ERR_MODEL_LOAD. */
gt_status gt_model_load(const char *path, const gt_options *options, gt_model **out, gt_error **error);

/* Releases the caller's reference to the model. The model stays loaded while sessions made
 * from it are alive, and is unloaded (its compute thread joined, its file unmapped) when the
 * last of them is freed. NULL is allowed (does nothing). */
void gt_model_free(gt_model *model);

/* The KV-cache positions of the model's sessions (the context_length it was loaded with, or
 * the model's maximum); 0 for NULL. */
size_t gt_model_context_length(const gt_model *model);

/* Encodes text as the model's tokenizer does (plain text: control tokens such as
 * "<start_of_turn>" in the text are not parsed), with <bos> first if add_bos is non-zero.
 *   model, text, n_out  not NULL; text is UTF-8
 *   out       receives up to `capacity` token ids; may be NULL when capacity is 0
 *   n_out     receives the number of ids of the text, also when they do not fit
 * Two-call use: call with capacity 0 to learn the count, then with an array that large.
 * Errors: GT_ERR_INVALID_ARGUMENT; GT_ERR_BUFFER_TOO_SMALL when the ids do not fit in
 * `capacity` (nothing is written to out; *n_out is the count needed). */
gt_status gt_tokenize(const gt_model *model, const char *text, int add_bos, int32_t *out, size_t capacity,
                      size_t *n_out, gt_error **error);

/* ---- Sessions ------------------------------------------------------------------------- */

/* One conversation: a KV cache of its own over the model's shared weights. A new prompt that
 * starts with the tokens the session ran last (the next turn of a chat, a fixed system prompt)
 * skips them; results never depend on what the session ran before. */
typedef struct gt_session gt_session;

/* Makes a session of model (which it keeps loaded until gt_session_free).
 * Errors: GT_ERR_INVALID_ARGUMENT, GT_ERR_SESSION_CREATION. */
gt_status gt_session_new(gt_model *model, gt_session **out, gt_error **error);

/* Frees a session. It must not be in use by another thread. NULL is allowed (does nothing). */
void gt_session_free(gt_session *session);

/* Asks the generation running on the session (if any) to stop, as if its callback had
 * returned non-zero: gt_generate / gt_chat returns GT_OK within about one token with
 * gt_result.stop_reason GT_STOP_CANCELLED. May be called from any thread (a timeout, a signal
 * thread). Has no effect on a later generation. NULL is allowed (does nothing). */
void gt_session_cancel(gt_session *session);

/* ---- Generation ----------------------------------------------------------------------- */

/* Receives the generated text piece by piece, in order, on the thread that called
 * gt_generate / gt_chat. `piece` is `len` bytes of UTF-8 holding whole characters (a piece
 * never ends inside a multi-byte character), followed by a NUL byte; `len` is never 0. The
 * memory is valid only during the call: copy what you keep. Return 0 to go on, non-zero to
 * stop generation (it ends with GT_STOP_CANCELLED; no further pieces are delivered).
 * Concatenating the pieces gives the whole reply, stop strings removed. */
typedef int (*gt_callback)(const char *piece, size_t len, void *user_data);

/* Why a generation ended. */
typedef enum gt_stop_reason {
    GT_STOP_NONE = 0,          /* no generation has finished on the session (or the last failed) */
    GT_STOP_MAX_TOKENS = 1,    /* max_tokens tokens were generated */
    GT_STOP_END_OF_SEQUENCE = 2, /* the model wrote <eos> */
    GT_STOP_END_OF_TURN = 3,   /* the model wrote <end_of_turn> (the usual end of a chat reply) */
    GT_STOP_STOP_STRING = 4,   /* the text reached one of the stop strings */
    GT_STOP_CONTEXT_FULL = 5,  /* the session's context is full */
    GT_STOP_CANCELLED = 6,     /* the callback returned non-zero, or gt_session_cancel was called */
    GT_STOP_RESPONSE_COMPLETE = 7 /* the JSON value of json_schema / json_object is complete */
} gt_stop_reason;

/* What the last generation on a session did. */
typedef struct gt_result {
    gt_stop_reason stop_reason;
    /* Tokens of the prompt, <bos> and the chat template included. */
    size_t prompt_tokens;
    /* Of those, how many were reused from the session's KV cache rather than run again. */
    size_t cached_prompt_tokens;
    /* Tokens generated, a final <eos> / <end_of_turn> included. After GT_STOP_CANCELLED: the
     * tokens of the text delivered up to the stop (the model may have run a token or so
     * further, or to the end if it was faster than the callback; that text is dropped). */
    size_t completion_tokens;
    /* The sampler's seed: set gt_options.seed to it to reproduce a sampled reply. */
    uint64_t seed;
    /* Seconds spent on the prompt, and from the first generated token to the end. */
    double prompt_seconds;
    double generation_seconds;
} gt_result;

/* Continues prompt_utf8 (plain text; <bos> is added first, control tokens in the text are not
 * parsed), calling callback with each piece of text as it is generated. Returns when
 * generation has ended: GT_OK for every stop reason, the callback's included (see
 * gt_session_last_result for which).
 *   session, prompt_utf8, callback  not NULL; user_data is passed to the callback as is
 *   options  NULL = the options the model was loaded with
 * Errors: GT_ERR_INVALID_ARGUMENT (NULL, invalid UTF-8), GT_ERR_INVALID_OPTIONS,
 * GT_ERR_PROMPT_TOO_LONG, GT_ERR_SESSION_BUSY, GT_ERR_INTERNAL. On an error the callback has
 * not been called, except for GT_ERR_INTERNAL and for GT_ERR_INVALID_OPTIONS when a json_schema
 * reply reaches a point where no token of the vocabulary can continue it. */
gt_status gt_generate(gt_session *session, const char *prompt_utf8, const gt_options *options,
                      gt_callback callback, void *user_data, gt_error **error);

/* One chat message. role is "system", "user" or "assistant"; content is UTF-8. */
typedef struct gt_message {
    const char *role;
    const char *content;
} gt_message;

/* Replies to a conversation with the model's chat template (Gemma has no system role: system
 * messages are folded into the next user turn). Pass the whole conversation every time; the
 * session's cache skips the part it has already run. The reply normally ends at <end_of_turn>
 * (GT_STOP_END_OF_TURN). If the last message is an assistant message, the model continues it.
 * Everything else is as for gt_generate.
 *   messages  n_messages messages (n_messages >= 1; no role or content NULL)
 * Errors: those of gt_generate, and GT_ERR_CHAT (no messages, a model without a chat
 * template); an unknown role is GT_ERR_INVALID_ARGUMENT. */
gt_status gt_chat(gt_session *session, const gt_message *messages, size_t n_messages, const gt_options *options,
                  gt_callback callback, void *user_data, gt_error **error);

/* Copies the result of the session's last gt_generate / gt_chat into *out (all zero, with
 * GT_STOP_NONE, before the first one or after one that failed). Returns GT_OK, or
 * GT_ERR_INVALID_ARGUMENT when session or out is NULL. */
gt_status gt_session_last_result(const gt_session *session, gt_result *out);

#ifdef __cplusplus
}
#endif

#endif /* GEMMA_TINY_H */
