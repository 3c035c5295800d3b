"""Reading definitions: strict JSON, the typed Conductor model, validation with JSON pointers, ${...}
expressions.
"""
