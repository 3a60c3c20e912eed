"""Where applications meet the logger: the demo memory system (`memory`), auditing
decorators and context (`hooks`), the `logging` bridge (`log_handler`), and sinks that ship
events to a webhook or an OpenTelemetry collector (`sinks`).
"""
