#!/usr/bin/env python3
"""gemma-tiny against llama.cpp, side by side: alternated rounds of `gemma-tiny bench` and
`llama-bench` with the same test arguments, then each test's medians, their ratio and the
median of the rounds' own ratios.

    scripts/compare-llama.py [--rounds N] [--bin PATH] [--gemma-arg ARG]... [--llama-arg ARG]... \\
        LLAMA_BENCH MODEL.gtm MODEL.gguf [BENCH ARGS]

BENCH ARGS go to both tools (they share -p, -n, -d, -t and -r), e.g. `-p 0 -n 64 -r 1 -t 2`.
--gemma-arg and --llama-arg add an argument for one tool only (`--llama-arg=--repack
--llama-arg=0`); environment variables such as GEMMA_TINY_KERNELS=avx2 reach gemma-tiny as they
are. Each round runs both tools once, in turns: gemma-tiny first in odd rounds, llama.cpp first in
even ones, so that a drift of the machine's speed falls on both. A figure per tool and round is
the tool's own headline (gemma-tiny's median of its repetitions, llama-bench's mean).

This host's memory speed moves by 20-30% between runs (docs/BENCHMARKS.md), so one round says
little: take several and compare the medians. gemma-tiny is --bin, else $GEMMA_TINY_BIN, else
.build/release/gemma-tiny. Standard library only.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class CompareError(Exception):
    pass


def run_tool(name, argv):
    """stdout of argv; a CompareError naming the tool if it cannot start or fails."""
    try:
        done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    except OSError as error:
        raise CompareError(f"cannot run {name} ({argv[0]}): {error.strerror}")
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise CompareError(f"{name} failed with exit status {done.returncode}: {last}")
    return done.stdout


def test_name(result):
    """A test's name from either tool's fields: pp512 t2, tg64 t2 @ d2048."""
    n_prompt, n_gen, depth = result["n_prompt"], result["n_gen"], result.get("n_depth", 0)
    if n_prompt and n_gen:
        name = f"pp{n_prompt}+tg{n_gen}"
    else:
        name = f"pp{n_prompt}" if n_prompt else f"tg{n_gen}"
    name += f" t{result['threads'] if 'threads' in result else result['n_threads']}"  # gemma-tiny / llama-bench
    return name + (f" @ d{depth}" if depth else "")


def gemma_figures(text):
    try:
        results = json.loads(text)["results"]
        return {test_name(r): float(r["median_ts"]) for r in results}
    except (ValueError, KeyError, TypeError) as error:
        raise CompareError(f"gemma-tiny bench printed no results this script can read ({error})")


def llama_figures(text):
    figures = {}
    try:
        for line in text.splitlines():
            if line.strip():
                r = json.loads(line)
                figures[test_name(r)] = float(r["avg_ts"])
    except (ValueError, KeyError, TypeError) as error:
        raise CompareError(f"llama-bench printed no results this script can read ({error})")
    if not figures:
        raise CompareError("llama-bench printed no results")
    return figures


def spread(values):
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def summary(rounds):
    """The table of medians and ratios over rounds [(gemma figures, llama figures)]."""
    lines = ["| test | gemma-tiny tok/s | llama.cpp tok/s | ratio of medians | rounds' ratios |",
             "|---|---:|---:|---:|---:|"]
    for test in rounds[0][0]:
        g = [gemma[test] for gemma, _ in rounds]
        l = [llama[test] for _, llama in rounds]
        pairs = [a / b for a, b in zip(g, l)]
        lines.append(f"| {test} | {spread(g)} | {spread(l)} | {statistics.median(g) / statistics.median(l):.2f}x "
                     f"| {statistics.median(pairs):.2f}x ({min(pairs):.2f}-{max(pairs):.2f}) |")
    return "\n".join(lines)


def main(argv):
    parser = argparse.ArgumentParser(
        prog="compare-llama.py",
        description="gemma-tiny bench against llama-bench, alternated rounds, medians and ratios.")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    parser.add_argument("--bin", help="gemma-tiny executable")
    parser.add_argument("--gemma-arg", action="append", default=[], help="an argument for gemma-tiny bench only")
    parser.add_argument("--llama-arg", action="append", default=[], help="an argument for llama-bench only")
    parser.add_argument("llama_bench")
    parser.add_argument("model")
    parser.add_argument("gguf")
    args, bench_args = parser.parse_known_args(argv)
    if args.rounds < 1:
        raise CompareError("--rounds must be at least 1")
    gemma = args.bin or os.environ.get("GEMMA_TINY_BIN") or os.path.join(REPO, ".build/release/gemma-tiny")
    for name, path in (("gemma-tiny", gemma), ("llama-bench", args.llama_bench)):
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            raise CompareError(f"{name} is not an executable file: {path}")
    for path in (args.model, args.gguf):
        if not os.path.isfile(path):
            raise CompareError(f"no model file at {path}")

    gemma_argv = [gemma, "bench", "-m", args.model, *bench_args, *args.gemma_arg, "--no-bandwidth", "-o", "json"]
    llama_argv = [args.llama_bench, "-m", args.gguf, *bench_args, *args.llama_arg, "-o", "jsonl"]
    tools = [("gemma-tiny", gemma_argv, gemma_figures), ("llama-bench", llama_argv, llama_figures)]
    rounds = []
    for r in range(1, args.rounds + 1):
        order = tools if r % 2 else tools[::-1]
        figures = {name: parse(run_tool(name, tool_argv)) for name, tool_argv, parse in order}
        g, l = figures["gemma-tiny"], figures["llama-bench"]
        if set(g) != set(l):
            raise CompareError(f"the tools ran different tests: gemma-tiny {sorted(g)}, llama.cpp {sorted(l)}")
        rounds.append((g, l))
        print(f"round {r}: " + "; ".join(f"{t} {g[t]:.2f} / {l[t]:.2f}" for t in g), flush=True)
    print(summary(rounds))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except CompareError as error:
        print(f"compare-llama: error: {error}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
