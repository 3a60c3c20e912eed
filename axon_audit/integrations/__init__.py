"""Where applications meet the logger: the demo memory system (`memory`), auditing
decorators, context and the `logging` bridge (`hooks`).
"""
