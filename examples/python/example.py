#!/usr/bin/env python3
"""gemma-tiny from Python with ctypes only (no build step): load a model, stream a reply, stop it
from the callback, show an error.

    python3 example.py MODEL.gtm "The capital of France is"

The library is GEMMA_TINY_LIB (a path to libgemmatiny.so) if set, else the system's.
Structures and functions are declared as in gemma_tiny.h, which documents them."""
import ctypes
import ctypes.util
import os
import sys

lib = ctypes.CDLL(os.environ.get("GEMMA_TINY_LIB") or ctypes.util.find_library("gemmatiny") or "libgemmatiny.so")
c_int, c_int32, c_size_t, c_float, c_char_p, c_void_p, POINTER = (
    ctypes.c_int, ctypes.c_int32, ctypes.c_size_t, ctypes.c_float, ctypes.c_char_p, ctypes.c_void_p, ctypes.POINTER)


class Options(ctypes.Structure):  # gt_options
    _fields_ = [("max_tokens", c_int32), ("temperature", c_float), ("top_k", c_int32), ("top_p", c_float),
                ("min_p", c_float), ("repeat_penalty", c_float), ("repeat_last_n", c_int32),
                ("seed", ctypes.c_uint64), ("stop", POINTER(c_char_p)), ("n_stop", c_size_t),
                ("threads", c_int32), ("context_length", c_int32), ("json_schema", c_char_p), ("json_object", c_int32)]


class Result(ctypes.Structure):  # gt_result
    _fields_ = [("stop_reason", c_int), ("prompt_tokens", c_size_t), ("cached_prompt_tokens", c_size_t),
                ("completion_tokens", c_size_t), ("seed", ctypes.c_uint64),
                ("prompt_seconds", ctypes.c_double), ("generation_seconds", ctypes.c_double)]


CALLBACK = ctypes.CFUNCTYPE(c_int, POINTER(ctypes.c_char), c_size_t, c_void_p)  # gt_callback
STOP_REASONS = ["none", "max_tokens", "end_of_sequence", "end_of_turn", "stop_string", "context_full", "cancelled",
                "response_complete"]
for name, restype, argtypes in [
    ("gt_version", c_char_p, []),
    ("gt_options_default", Options, []),
    ("gt_error_message", c_char_p, [c_void_p]),
    ("gt_error_code", c_int, [c_void_p]),
    ("gt_error_free", None, [c_void_p]),
    ("gt_model_load", c_int, [c_char_p, POINTER(Options), POINTER(c_void_p), POINTER(c_void_p)]),
    ("gt_model_free", None, [c_void_p]),
    ("gt_session_new", c_int, [c_void_p, POINTER(c_void_p), POINTER(c_void_p)]),
    ("gt_session_free", None, [c_void_p]),
    ("gt_generate", c_int, [c_void_p, c_char_p, POINTER(Options), CALLBACK, c_void_p, POINTER(c_void_p)]),
    ("gt_session_last_result", c_int, [c_void_p, POINTER(Result)]),
]:
    getattr(lib, name).restype, getattr(lib, name).argtypes = restype, argtypes


def check(status, error):
    """Raises the gt_error of a failed call (and frees it)."""
    if status != 0:
        message = lib.gt_error_message(error).decode()
        lib.gt_error_free(error)
        raise RuntimeError(f"error {status}: {message}")


def main(model_path, prompt):
    print(f"gemma-tiny {lib.gt_version().decode()}")
    model, session, error = c_void_p(), c_void_p(), c_void_p()
    try:  # an error is a value
        check(lib.gt_model_load(b"/no/such/model.gtm", None, ctypes.byref(model), ctypes.byref(error)), error)
    except RuntimeError as e:
        print(e)
    check(lib.gt_model_load(model_path.encode(), None, ctypes.byref(model), ctypes.byref(error)), error)
    check(lib.gt_session_new(model, ctypes.byref(session), ctypes.byref(error)), error)

    pieces = []

    @CALLBACK
    def on_piece(piece, length, user_data):  # each piece is whole UTF-8 characters
        pieces.append(ctypes.string_at(piece, length).decode())
        print(pieces[-1], end="", flush=True)
        return 1 if len(pieces) == 20 else 0  # non-zero: stop

    options = lib.gt_options_default()
    options.temperature, options.max_tokens = 0.0, 64  # greedy
    check(lib.gt_generate(session, prompt.encode(), ctypes.byref(options), on_piece, None, ctypes.byref(error)), error)
    result = Result()
    lib.gt_session_last_result(session, ctypes.byref(result))
    print(f"\n[stop reason {STOP_REASONS[result.stop_reason]}, {result.prompt_tokens} prompt tokens, "
          f"{result.completion_tokens} generated]")
    lib.gt_session_free(session)
    lib.gt_model_free(model)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: example.py MODEL.gtm PROMPT")
    main(sys.argv[1], sys.argv[2])
