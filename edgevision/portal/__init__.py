"""`edgevision portal`: Custom Vision on the device. The Training API (v3.3 / v3.4-preview) and the Prediction
API (v3.0 / v3.1) the official SDK calls, over the trainer and the scoring service, with projects, tags, images,
iterations and predictions in a SQLite database.

It is the one tool that composes two others: it trains with `edgevision.train` and predicts with
`edgevision.classifier`'s routes (tests/test_layout.py allows exactly these two imports).
"""
