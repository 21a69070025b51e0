"""Score stage: the SCAS proxy (`proxy`), chat-template regions, the engine, where it runs, the score cache."""
