/* examples/c/example.c: load a model, stream a reply, stop it from the callback, show an error.
 *   cc example.c $(pkg-config --cflags --libs gemma-tiny) -o example
 *   ./example model.gtm "The capital of France is"                                     */
#include <gemma_tiny.h>
#include <stdio.h>

/* Prints each piece as it comes; returns non-zero (stop) after the 20th. */
static int print_piece(const char *piece, size_t len, void *user_data) {
    int *pieces_left = user_data;
    fwrite(piece, 1, len, stdout);
    fflush(stdout);
    return --*pieces_left == 0;
}

int main(int argc, char **argv) {
    gt_model *model = NULL;
    gt_session *session = NULL;
    gt_error *err = NULL;
    if (argc != 3) { fprintf(stderr, "usage: %s MODEL.gtm PROMPT\n", argv[0]); return 2; }
    printf("gemma-tiny %s\n", gt_version());

    if (gt_model_load("/no/such/model.gtm", NULL, &model, &err) != GT_OK) {  /* an error is a value */
        printf("error %d: %s\n", gt_error_code(err), gt_error_message(err));
        gt_error_free(err);
    }
    if (gt_model_load(argv[1], NULL, &model, &err) != GT_OK || gt_session_new(model, &session, &err) != GT_OK) {
        fprintf(stderr, "error: %s\n", gt_error_message(err));
        gt_error_free(err);
        gt_model_free(model);
        return 1;
    }
    gt_options options = gt_options_default();
    options.temperature = 0;  /* greedy */
    options.max_tokens = 64;
    int pieces_left = 20;
    gt_result result;
    static const char *reasons[] = {"none", "max_tokens", "end_of_sequence", "end_of_turn", "stop_string",
                                    "context_full", "cancelled", "response_complete"};
    if (gt_generate(session, argv[2], &options, print_piece, &pieces_left, &err) == GT_OK &&
        gt_session_last_result(session, &result) == GT_OK) {
        printf("\n[stop reason %s, %zu prompt tokens, %zu generated]\n", reasons[result.stop_reason],
               result.prompt_tokens, result.completion_tokens);
    } else {
        fprintf(stderr, "error: %s\n", gt_error_message(err));
        gt_error_free(err);
    }
    gt_session_free(session);
    gt_model_free(model);
    return 0;
}
