import GemmaTinyCLISupport

runCommandLine(ServeCommand.self)
