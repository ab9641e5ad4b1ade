import GemmaTinyCLISupport

// One `error: …` line and a non-zero exit for every failure, usage errors included, as gemma-tiny.
runCommandLine(GemmaQuantize.self)
