import GemmaTinyCLISupport

runCommandLine(GemmaTinyCommand.self)
