"""The student: which model an alias names and how it is loaded (`loading`), and how it reads a
conversation (`chat`: the chat template, its SHA-256 and `ChatEncoder`). Used by score, train and evaluate.

Both modules import no torch at import time: a model is loaded only when a function asks for one.
"""
