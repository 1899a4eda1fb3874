"""The operations: one module per use case (submit, review, execute, undo, staff, access, ...).

Routes, console views, commands and `Guard` call them through `foureyes.workflow.operations`.
"""
