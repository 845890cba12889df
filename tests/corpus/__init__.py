"""Real-world and hostile corpora, and the fuzzers.

Pure code run over many mails read from disk: the shared corpus, the
hostile fixtures, and generated hostile MIME.
"""
