"""Real-world and hostile corpora, and the fuzzers: pure code run over many mails read from disk."""
