"""Where applications meet the logger: the demo memory system (`memory`), auditing
decorators and context (`hooks`), and the `logging` bridge (`log_handler`).
"""
